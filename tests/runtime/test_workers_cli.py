"""``tgrunner run TARGET --workers 2`` in its own process against FakeTelegram: per-chat order
with nothing lost, a clean stop, a second signal, and bad worker counts."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cli_support import in_subprocess
from processes import MODES, end_started_bots, start_bot, start_python, unfinished
from replies import send_load, tally
from tgrunner.errors import ConfigError
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[1] / "bots"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(60)
async def test_two_workers_keep_per_chat_order_and_stop_cleanly(
    tg: FakeTelegram, mode: str
) -> None:
    sent = send_load(tg, chats=30, per_chat=20)
    bot = await start_bot(tg, "echo_bot:router", "--workers", "2", *MODES[mode], cwd=BOTS)
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=30)
    log = await bot.wait_for_line("worker processes ready")
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert "2 worker processes ready (pids " in log
    assert "· concurrency 500 · transport fast · 2 worker processes" in log
    assert "workers: #0 pid " in err and "; #1 pid " in err
    assert unfinished(tg, mode) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "argument --workers: '0' must be a whole number of at least 1"),
        (["--workers", "-1"], "argument --workers: '-1' must be a whole number of at least 1"),
        (["--workers", "abc"], "argument --workers: 'abc' must be a whole number of at least"),
        (["--workers", "4", "--concurrency", "3"],
         "4 workers are more than the --concurrency of 3"),
        (["--workers", "2", "--heartbeat-timeout", "0"],
         "argument --heartbeat-timeout: '0' must be a number of seconds, more than 0"),
    ],
)  # fmt: skip
async def test_bad_worker_counts_fail_in_one_line(args: list[str], message: str) -> None:
    code, _, err = await in_subprocess("run", "echo_bot:router", "--token", "1:x", *args)
    assert code == 2, err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


async def test_bad_worker_count_from_the_environment() -> None:
    code, _, err = await in_subprocess(
        "run", "echo_bot:router", "--token", "1:x", env={"TGRUNNER_WORKERS": "none"}
    )
    assert code == 2, err
    assert "TGRUNNER_WORKERS='none' (the variable of --workers) must be a whole number" in err
    assert err.count("\n") == 1


@pytest.mark.timeout(60)
async def test_tgrunner_run_from_python_with_an_import_string_and_workers(
    tg: FakeTelegram,
) -> None:
    code = (
        "import logging, tgrunner\n"
        "logging.basicConfig(level=logging.INFO)\n"
        f"tgrunner.run('echo_bot:router', token={tg.token!r}, api_url={tg.api_url!r}, "
        "workers=2)\n"
    )
    bot = await start_python(code, cwd=BOTS)
    await tg.wait_until_polling(timeout=30)
    sent = send_load(tg, chats=10, per_chat=5)
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=30)
    bot.send_signal(signal.SIGTERM)
    code_, err = await bot.finish()
    assert code_ == 0, err
    assert "2 worker processes ready" in err and "Traceback" not in err


def test_tgrunner_run_refuses_an_object_with_workers() -> None:
    import tgrunner

    with pytest.raises(ConfigError, match="load the bot from its import string"):
        tgrunner.run(tgrunner.Router(), token="1:x", workers=2)


@pytest.mark.timeout(60)
async def test_sighup_without_workers_is_logged_and_ignored(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "echo_bot:router", cwd=BOTS)
    bot.send_signal(signal.SIGHUP)
    await bot.wait_for_line("SIGHUP: no worker processes to replace (--workers 1); ignored")
    alice = tg.user("Alice")
    alice.send("still here")
    await tg.wait_for_replies(alice, 1, timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
