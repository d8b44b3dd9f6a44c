"""What ``tgrunner run`` says: one start-up line, one stop summary, and as much logging as
``--log-level``, ``-v`` or ``-q`` ask for, before or after the command's name, or
``TGRUNNER_LOG_LEVEL``."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from cli_support import BOTS
from processes import BotProcess, end_started_bots, start_bot
from tgrunner.cli import _command, _parser
from tgrunner.cli.common import log_level
from tgrunner.testing import FakeTelegram

START = re.compile(
    r"INFO tgrunner: @(\w+) \(id (\d+)\) · native · polling (http://127\.0\.0\.1:\d+) · "
    r"(journal \S+journal\.sqlite3|strict offsets) · concurrency (\d+) · transport (\w+)\n"
)
SUMMARY = re.compile(
    r"INFO tgrunner: stopped \((clean|fast|budget exceeded)\) after \d+\.\d+ s: (\d+) handled "
    r"\((\d+) failed, (\d+) timed out\), (\d+) replayed; \d+\.\d updates/s\n"
)


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["run", "bot:router"], logging.INFO),
        (["-v", "run", "bot:router"], logging.DEBUG),
        (["run", "bot:router", "-v"], logging.DEBUG),
        (["run", "-v", "bot:router"], logging.DEBUG),
        (["-q", "run", "bot:router"], logging.WARNING),
        (["run", "bot:router", "--quiet"], logging.WARNING),
        (["-qq", "run", "bot:router"], logging.ERROR),
        (["-q", "run", "bot:router", "-q"], logging.ERROR),
        (["-v", "run", "bot:router", "-q"], logging.INFO),
        (["-vvv", "run", "bot:router"], logging.DEBUG),
        (["--log-level", "debug", "run", "bot:router"], logging.DEBUG),
        (["--log-level=error", "run", "bot:router"], logging.ERROR),
        (["run", "bot:router", "--log-level", "WARNING"], logging.WARNING),
        (["--log-level", "error", "run", "bot:router", "--log-level", "debug"], logging.DEBUG),
        (["--log-level", "error", "run", "bot:router", "-v"], logging.ERROR),
        (["journal", "list", "-v"], logging.DEBUG),
        (["-q", "journal", "list"], logging.WARNING),
        (["demo", "-v"], logging.DEBUG),
        (["fake-telegram", "-q"], logging.WARNING),
    ],
)
def test_the_log_level_is_read_before_and_after_the_command(argv: list[str], level: int) -> None:
    assert logging.getLevelName(log_level(_parser(_command(argv)).parse_args(argv))) == (
        logging.getLevelName(level)
    )


def test_the_variable_gives_the_level_unless_an_option_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TGRUNNER_LOG_LEVEL", "Warning")
    for argv, level in ((["run", "x:y"], logging.WARNING), (["run", "x:y", "-v"], logging.DEBUG)):
        assert log_level(_parser("run").parse_args(argv)) == level


def test_the_command_is_found_after_the_options_before_it() -> None:
    assert _command(["--log-level", "debug", "run", "x:y"]) == "run"
    assert _command(["-v", "--log-level=info", "journal", "list"]) == "journal"
    assert _command(["--version"]) is None


@pytest.mark.slow
async def test_start_line_debug_logs_and_stop_summary_of_a_real_run(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "echo_bot:router", "-v", "--poll-timeout", "1", cwd=BOTS)
    log = await bot.wait_for_line("tgrunner.sources.polling: getUpdates: ")
    [start] = START.findall(log)
    username, bot_id, api_url, intake, concurrency, transport = start
    assert (bot_id, api_url) == (tg.token.partition(":")[0], tg.api_url)
    assert username.endswith("_bot")
    data_dir = os.environ["TGRUNNER_DATA_DIR"]
    assert intake == f"journal {data_dir}/{bot_id}/journal.sqlite3"
    assert (concurrency, transport) == ("500", "fast")
    # Debug: the transport chosen, the journal opened, each fetch.
    assert "Bot API client: fast transport to" in log and "intake journal " in log
    assert re.search(r"getUpdates: \d+ update\(s\), \d+ new \(offset ", log), log
    alice = tg.user("Alice")
    for text in ("one", "two"):
        alice.send(text)
    await tg.wait_for_replies(alice, 2, timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert SUMMARY.findall(err) == [("clean", "2", "0", "0", "0")], err
    assert "Traceback" not in err


@pytest.mark.slow
async def test_quiet_before_the_command_leaves_only_warnings(tg: FakeTelegram) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "-q", "run", "echo_bot:router", "--no-journal",
        "--api-url", tg.api_url, "--token", tg.token,
        cwd=BOTS, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    bot = BotProcess(proc)
    await tg.wait_until_polling(timeout=30)
    alice = tg.user("Alice")
    alice.send("hi")
    await tg.wait_for_replies(alice, 1, timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert (code, err) == (0, "")


@pytest.mark.slow
async def test_strict_offsets_and_the_level_from_the_environment(tg: FakeTelegram) -> None:
    bot = await start_bot(
        tg, "echo_bot:router", "--no-journal", "--concurrency", "7", "--transport", "aiohttp",
        "--poll-timeout", "1",
        cwd=BOTS, env={"TGRUNNER_LOG_LEVEL": "debug"},
    )  # fmt: skip
    log = await bot.wait_for_line("getUpdates: ")
    [start] = START.findall(log)
    assert start[3:] == ("strict offsets", "7", "aiohttp")
    bot.send_signal(signal.SIGINT)
    code, err = await bot.finish()
    assert code == 0 and SUMMARY.findall(err) == [("clean", "0", "0", "0", "0")], err
