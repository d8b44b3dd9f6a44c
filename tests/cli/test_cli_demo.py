"""``tgrunner demo`` notices its bot's process dying, before it polls or in the middle of the
load, and says so with the end of the bot's stderr, exit code 1, at once (not after a 30 s
timeout, and without a traceback). A small demo passes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time

import pytest

from cli_support import in_subprocess

pytestmark = pytest.mark.slow


async def test_a_bot_that_cannot_start_is_reported_with_its_error() -> None:
    # The demo's bot is a 'tgrunner run', which refuses an unknown TGRUNNER_* variable.
    started = time.monotonic()
    code, out, err = await in_subprocess(
        "demo", "--chats", "2", "--updates", "10", env={"TGRUNNER_NO_SUCH_SETTING": "1"}
    )
    assert time.monotonic() - started < 20
    assert code == 1, err
    assert "Traceback" not in err and "Traceback" not in out
    assert err.startswith("tgrunner demo: the demo bot exited with code 2; it said:\n"), err
    assert "tgrunner: Unknown setting TGRUNNER_NO_SUCH_SETTING." in err
    assert "Summary" not in out


async def test_a_bot_killed_during_the_load_ends_the_demo_at_once() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "demo", "--chats", "4", "--updates", "100000",
        "--latency", "50",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    bot_pid = None
    try:
        assert proc.stdout is not None and proc.stderr is not None
        async with asyncio.timeout(30):
            first = (await proc.stdout.readline()).decode()
            match = re.search(
                r"starting the demo bot \(tgrunner\.cli\.demo_bot, pid (\d+)\)", first
            )
            assert match, first
            bot_pid = int(match[1])
            second = (await proc.stdout.readline()).decode()
            assert second.startswith("100000 messages from 4 chats"), second
        # The load runs (4 chats, 50 ms a reply: many minutes). Kill the bot by its pid.
        os.kill(bot_pid, signal.SIGKILL)
        killed = time.monotonic()
        async with asyncio.timeout(15):
            out, err = await proc.communicate()
        took = time.monotonic() - killed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1, err
    assert took < 10, f"the demo took {took:.1f} s to notice"
    text = err.decode()
    assert "Traceback" not in text
    assert text.startswith(f"tgrunner demo: the demo bot was killed by signal {signal.SIGKILL}")
    assert "Summary" not in out.decode()


async def test_a_small_demo_passes() -> None:
    code, out, err = await in_subprocess("demo", "--chats", "5", "--updates", "50", timeout=60)
    assert code == 0, err
    assert re.search(r"^  lost +0$", out, re.MULTILINE) and "order violations  0" in out, out


async def test_a_small_demo_with_two_workers_passes() -> None:
    code, out, err = await in_subprocess(
        "demo", "--chats", "20", "--updates", "400", "--workers", "2", timeout=60
    )
    assert code == 0, err
    assert "pid " in out and ", 2 worker processes)" in out, out
    assert re.search(r"^  lost +0$", out, re.MULTILINE) and "order violations  0" in out, out
    assert re.search(r"^  duplicates +0$", out, re.MULTILINE), out


async def test_a_bad_worker_count_fails_in_one_line() -> None:
    code, _, err = await in_subprocess("demo", "--workers", "0")
    assert code == 2, err
    assert "argument --workers: '0' must be a whole number of at least 1" in err
    assert err.count("\n") == 1 and "Traceback" not in err
