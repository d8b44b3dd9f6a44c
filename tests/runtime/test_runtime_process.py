"""``tgrunner run`` in its own process: the whole stop fits in the stop budget even when a
handler ignores cancellation, a third signal exits at once, a failure of the runtime ends in
one line on stderr and a non-zero exit without a traceback, and ``tgrunner run`` never imports
``tgrunner.testing``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime_support import free_port

from processes import end_started_bots, journaled, start_bot
from tgrunner.testing import FakeTelegram, Faults

BOTS = Path(__file__).parent.parent / "bots"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    """A failing test must not leave its bot running: kill, by PID, what this test started."""
    yield
    await end_started_bots()


def _said(err: str) -> list[str]:
    """The lines the CLI itself printed (log lines carry a timestamp and a level)."""
    return [line for line in err.splitlines() if line.startswith("tgrunner:")]


@pytest.mark.timeout(60)
async def test_the_stop_budget_bounds_a_stop_whose_handler_ignores_cancellation(
    tg: FakeTelegram,
) -> None:
    budget = 2.0
    bot = await start_bot(
        tg, "stubborn_bot:router", "--stop-budget", str(budget), "--grace", "60", cwd=BOTS
    )
    alice = tg.user("Alice")
    alice.send("work")
    await tg.wait_for_replies(alice, 1, timeout=20)  # "started": the handler runs
    bot.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    code, err = await bot.finish(timeout=30)
    took = time.monotonic() - signalled
    assert took < budget + 1.5, f"the stop took {took:.1f} s, past its {budget} s budget:\n{err}"
    assert code == 1, err  # not a clean stop: the handler was left behind
    assert "Traceback" not in err
    assert "INFO tgrunner: stopped (budget exceeded) after " in err, err
    assert journaled(tg) == 1  # the unfinished update is kept for the next start


@pytest.mark.timeout(60)
async def test_a_third_signal_exits_at_once(tg: FakeTelegram) -> None:
    # A fast stop still waits a few seconds for a handler that ignores cancellation; the
    # third signal is for when even that is too long.
    bot = await start_bot(tg, "stubborn_bot:router", "--grace", "60", cwd=BOTS)
    alice = tg.user("Alice")
    alice.send("work")
    await tg.wait_for_replies(alice, 1, timeout=20)
    # Signals do not queue: send each once the one before it is being acted on.
    bot.send_signal(signal.SIGTERM)
    await bot.wait_for_line("waiting up to")
    bot.send_signal(signal.SIGTERM)
    await bot.wait_for_line("stopping fast")
    bot.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    code, err = await bot.finish(timeout=30)
    assert time.monotonic() - signalled < 1.5, err
    assert code == 1
    assert "a third time" in err
    assert "Traceback" not in err


@pytest.mark.timeout(60)
async def test_a_bad_answer_ends_in_one_line_and_a_non_zero_exit(tg: FakeTelegram) -> None:
    tg.faults = Faults(answer=b'{"ok":true,"result":[1,2]}', methods=frozenset({"getUpdates"}))
    bot = await start_bot(tg, "echo_bot:router", cwd=BOTS)
    code, err = await bot.finish(timeout=30)
    assert code == 1, err
    [line] = _said(err)
    assert "getUpdates" in line and "not a list of updates" in line, err
    assert "Traceback" not in err


@pytest.mark.timeout(60)
async def test_a_journal_that_cannot_be_written_ends_in_one_line(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "unwritable_bot:router", cwd=BOTS)
    alice = tg.user("Alice")
    alice.send("fill")
    await tg.wait_for_replies(alice, 1, timeout=20)  # the journal cannot grow from now on
    alice.send("next")
    code, err = await bot.finish(timeout=30)
    assert code == 1, err
    [line] = _said(err)
    assert "OperationalError" in line, err
    assert "Traceback" not in err


_REPORT_IMPORTS = """
import sys
from tgrunner.cli import main
code = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m.split(".")[:2] == ["tgrunner", "testing"])
print("exit", code, "imported", ",".join(leaked) or "nothing")
"""


@pytest.mark.timeout(60)
async def test_tgrunner_run_never_imports_the_testing_package() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _REPORT_IMPORTS,
        "run", "echo_bot:router", "--api-url", f"http://127.0.0.1:{free_port()}",
        "--token", "123:AAtesttesttesttesttesttesttesttestt",
        cwd=BOTS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TGRUNNER_START_TIMEOUT": "0.5"},
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    # It ran the command: the unreachable API is a ConfigError (exit 2) after 0.5 s.
    assert out.decode().split() == ["exit", "2", "imported", "nothing"], err.decode()
