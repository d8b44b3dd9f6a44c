"""The runtime in its own process: a clean stop under load loses and repeats nothing; a
SIGKILL and a restart lose nothing and repeat at most what was in flight; a second signal exits
at once. FakeTelegram runs in the test process; the bot is ``tgrunner run`` in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chaos import MARK_WINDOW, kill_and_restart, stop_and_restart
from processes import MODES, end_started_bots, journaled, start_bot, unfinished
from replies import replied, send_load, tally
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parent / "bots"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    """A failing test must not leave its bot running: kill, by PID, what this test started."""
    yield
    await end_started_bots()


async def finish(proc: asyncio.subprocess.Process, timeout: float = 30) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(120)
async def test_sigterm_under_load_loses_and_repeats_nothing(tg: FakeTelegram, mode: str) -> None:
    result = await stop_and_restart(tg, "echo_bot:router", mode, cwd=BOTS, per_chat=10)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(240)
async def test_five_sigkills_under_load_lose_nothing(tg: FakeTelegram, mode: str) -> None:
    result = await kill_and_restart(tg, "echo_bot:router", mode, cwd=BOTS)
    assert (result.tally.lost, result.tally.violations) == (0, 0)
    assert result.tally.duplicates <= result.bound, result


@pytest.mark.timeout(60)
async def test_finish_marks_reach_disk_while_idle(tg: FakeTelegram) -> None:
    """A SIGKILL while idle repeats nothing: finish marks are on disk within 100 ms."""
    sent = send_load(tg, chats=20, per_chat=10)
    total = sum(len(v) for v in sent.values())
    bot = await start_bot(tg, "echo_bot:router", cwd=BOTS)
    await tg.wait_for(lambda: replied(tg) >= total, timeout=30)
    # The contract is a time bound: 100 ms after the last reply, plus margin for the loop.
    await asyncio.sleep(MARK_WINDOW + 0.05)
    assert journaled(tg) == 0
    bot.kill()
    await bot.finish()
    bot = await start_bot(tg, "echo_bot:router", cwd=BOTS)
    alice = tg.user("Alice")
    alice.send("after the restart")
    await tg.wait_for_replies(alice, 1, timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(60)
async def test_second_signal_exits_at_once(tg: FakeTelegram, mode: str) -> None:
    bot = await start_bot(tg, "slow_bot:router", "--grace", "60", *MODES[mode], cwd=BOTS)
    alice = tg.user("Alice")
    alice.send("work")
    await tg.wait_for_replies(alice, 1, timeout=20)  # "started": the handler is running
    bot.send_signal(signal.SIGTERM)
    # The first signal waits for the handler (up to the 60 s grace); the second must not.
    # Signals do not queue, so send the second only once the first is being acted on.
    await bot.wait_for_line("waiting up to")
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish(timeout=10)
    assert code == 1
    assert "Traceback" not in err
    # The unfinished update is kept for the next start (journal, or Telegram with strict).
    assert unfinished(tg, mode) == 1


@pytest.mark.timeout(60)
async def test_bad_import_string_and_missing_token_fail_clearly(tg: FakeTelegram) -> None:
    cases = [
        (["nosuchmodule:router", "--token", tg.token], "no such module"),
        (["echo_bot", "--token", tg.token], "expected 'module:attribute'"),
        (["echo_bot:nothing", "--token", tg.token], "has no attribute 'nothing'"),
        (["echo_bot:router"], "No bot token"),
    ]
    env = {k: v for k, v in os.environ.items() if k not in {"TGRUNNER_TOKEN", "BOT_TOKEN"}}
    for args, message in cases:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tgrunner", "run", *args, "--api-url", tg.api_url,
            cwd=BOTS, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        code, err = await finish(proc)
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err


@pytest.mark.timeout(60)
async def test_unreachable_api_fails_clearly() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", "echo_bot:router",
        "--api-url", "http://127.0.0.1:9", "--token", "123:AAtesttesttesttesttesttesttesttestt",
        cwd=BOTS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TGRUNNER_START_TIMEOUT": "1.5"},
    )  # fmt: skip
    code, err = await finish(proc)
    assert code == 2, err
    assert "Cannot reach the Bot API at http://127.0.0.1:9" in err
    assert "after 1.5 s" in err
    assert "Traceback" not in err
