"""What the runner tells a person: the start-up line once the bot is known and the intake is
open, the stop summary (counts, run time, rate, and how the stop went), and "reconnected"
after an outage."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from runtime_support import FAST, LogWatch, echo, make_runner, serving, until

from tgrunner.client.bot import Bot
from tgrunner.executors.processes import WorkerStats
from tgrunner.intake.journal import Journal
from tgrunner.intake.options import IntakeOptions
from tgrunner.runtime.build import frontend_for
from tgrunner.runtime.report import start_line, workers_line
from tgrunner.scheduler import SchedulerOptions
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram, Faults

SUMMARY = re.compile(
    r"^stopped \((?P<how>[a-z ]+)\) after (?P<seconds>\d+\.\d+) s: (?P<handled>\d+) handled "
    r"\((?P<failed>\d+) failed, (?P<timed_out>\d+) timed out\), (?P<replayed>\d+) replayed"
    r"(?P<extra>[^;]*); (?P<rate>\d+\.\d) updates/s$"
)


def _summary(watch: LogWatch) -> dict[str, str]:
    [line] = watch.messages
    match = SUMMARY.match(line)
    assert match, line
    return match.groupdict()


async def test_the_start_line_says_what_runs(tg: FakeTelegram, data_dir: Path) -> None:
    settings = Settings(polling=FAST, scheduler=SchedulerOptions(concurrency=42))
    runner = make_runner(tg.api_url, tg.token, echo, settings=settings)
    with LogWatch(" · ") as start:
        task = serving(runner)
        await until(start.wait(), task)
        # Logged before the first fetch: nothing has asked for updates yet.
        assert not tg.calls("getUpdates")
    bot_id = tg.token.partition(":")[0]
    me = await runner.bot.get_me()
    assert start.messages == [
        f"@{me['username']} (id {bot_id}) · native · polling {tg.api_url} · journal "
        f"{data_dir}/{bot_id}/journal.sqlite3 · concurrency 42 · transport fast"
    ]
    runner.stop()
    async with asyncio.timeout(10):
        assert await task == 0


async def test_with_strict_offsets_the_start_line_says_so(tg: FakeTelegram) -> None:
    settings = Settings(polling=FAST, intake=IntakeOptions(journal=False))
    runner = make_runner(tg.api_url, tg.token, echo, settings=settings, frontend="aiogram")
    with LogWatch(" · ") as start:
        task = serving(runner)
        await until(start.wait(), task)
    [line] = start.messages
    assert " · aiogram · " in line and " · strict offsets · concurrency 500 · " in line
    runner.stop()
    async with asyncio.timeout(10):
        assert await task == 0


def test_each_front_end_names_itself() -> None:
    from aiogram import Bot as AiogramBot
    from aiogram import Dispatcher
    from telegram.ext import Application

    from tgrunner.frontends.native.router import Router

    assert frontend_for(Router()).name == "native"
    assert frontend_for(echo).name == "native"
    pair = (Dispatcher(), AiogramBot("1:AAx"))
    assert frontend_for(pair, token=None, api_url=None).name == "aiogram"
    app = Application.builder().token("1:AAx").build()
    assert frontend_for(app, token=None, api_url=None).name == "ptb"


async def test_a_clean_stop_sums_up_what_was_handled(tg: FakeTelegram) -> None:
    async def handler(update: dict[str, Any], bot: Bot) -> None:
        if update["message"]["text"] == "boom":
            raise ZeroDivisionError("on purpose")
        await echo(update, bot)

    runner = make_runner(tg.api_url, tg.token, handler, on_error=lambda update, exc: None)
    alice = tg.user("Alice")
    with LogWatch("stopped (") as summary:
        task = serving(runner)
        for text in ("one", "boom", "two"):
            alice.send(text)
        await until(tg.wait_for_replies(alice, 2, timeout=10), task)
        await until(tg.wait_for(lambda: runner.stats.finished == 3), task)
        runner.stop()
        async with asyncio.timeout(10):
            assert await task == 0
    found = _summary(summary)
    assert (found["how"], found["handled"], found["failed"], found["timed_out"]) == (
        "clean", "3", "1", "0"
    )  # fmt: skip
    assert (found["replayed"], found["extra"]) == ("0", "")
    assert float(found["rate"]) > 0
    assert runner.stats.stop == "clean"


async def test_a_fast_stop_and_a_stop_past_the_budget_say_so(tg: FakeTelegram) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        started.set()
        stubborn = update["message"]["text"] == "stubborn"
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if not stubborn:
                    raise

    for text, how in (("polite", "fast"), ("stubborn", "budget exceeded")):
        started.clear()
        settings = Settings(
            polling=FAST,
            grace=30,
            stop_budget=1.0,
            scheduler=SchedulerOptions(cancel_grace=0.2, handler_timeout=None),
        )
        runner = make_runner(tg.api_url, tg.token, handler, settings=settings)
        with LogWatch("stopped (") as summary:
            task = serving(runner)
            tg.user(text).send(text)
            await until(started.wait(), task)
            runner.stop()
            runner.stop(fast=True)
            async with asyncio.timeout(10):
                assert await task == 1
        assert _summary(summary)["how"] == how
        assert runner.stats.stop == how
    release.set()  # the stubborn handler may end now


async def test_the_summary_counts_what_the_journal_replayed(
    tg: FakeTelegram, data_dir: Path
) -> None:
    bot_id = int(tg.token.partition(":")[0])
    (data_dir / str(bot_id)).mkdir()
    alice = tg.user("Alice")
    # What a run that ended before handling it left in the journal.
    journal = Journal(data_dir / str(bot_id) / "journal.sqlite3", bot_id=bot_id)
    chat = {"id": alice.id, "type": "private", "first_name": "Alice"}
    message = {"message_id": 1, "date": 0, "chat": chat, "from": alice.as_dict(),
               "text": "left over"}  # fmt: skip
    await journal.put([{"update_id": 7, "message": message}])
    await journal.close()
    runner = make_runner(tg.api_url, tg.token, echo)
    with LogWatch("stopped (") as summary:
        task = serving(runner)
        [reply] = await tg.wait_for_replies(alice, 1, timeout=10)
        assert reply["text"] == "left over"
        runner.stop()
        async with asyncio.timeout(10):
            assert await task == 0
    found = _summary(summary)
    assert (found["handled"], found["replayed"]) == ("1", "1")
    assert runner.stats.replayed == 1


async def test_the_first_fetch_after_an_outage_says_reconnected(tg: FakeTelegram) -> None:
    runner = make_runner(tg.api_url, tg.token, echo)
    with LogWatch("getUpdates failed") as failed, LogWatch("reconnected to") as back:
        task = serving(runner)
        await until(tg.wait_until_polling(), task)
        assert back.count == 0
        tg.faults = Faults(error_rate=1.0, methods=frozenset({"getUpdates"}))
        await until(failed.wait(3), task)
        assert back.count == 0  # not while it still fails
        tg.faults = None
        await until(back.wait(), task)
        alice = tg.user("Alice")
        alice.send("still here")
        await until(tg.wait_for_replies(alice, 1, timeout=10), task)
        runner.stop()
        async with asyncio.timeout(10):
            assert await task == 0
    [line] = back.messages
    match = re.fullmatch(
        rf"reconnected to {re.escape(tg.api_url)} after (\d+\.\d) s / (\d+) failed attempt\(s\)",
        line,
    )
    assert match, line
    assert int(match[2]) >= 3 and float(match[1]) > 0
    assert failed.messages[0].endswith("(failure 1 in a row)"), failed.messages[0]


def test_the_start_line_names_a_proxy_without_its_password() -> None:
    line = start_line(
        {"id": 5, "first_name": "Echo"},
        frontend="ptb",
        source="polling https://api.telegram.org",
        intake="strict offsets",
        concurrency=3,
        transport="aiohttp",
        proxy="http://user:secret@127.0.0.1:3128",
    )
    assert line == (
        "Echo (id 5) · ptb · polling https://api.telegram.org · strict offsets · concurrency 3 "
        "· transport aiohttp via proxy http://127.0.0.1:3128"
    )


def test_the_workers_line_gives_each_slot_its_figures() -> None:
    stats = [
        WorkerStats(slot=0, pid=4242, state="ready", in_flight=0, done=612, restarts=1,
                    replaced=0),
        WorkerStats(slot=1, pid=0, state="gone", in_flight=3, done=588, restarts=2, replaced=1),
    ]  # fmt: skip
    assert workers_line(stats) == (
        "workers: #0 pid 4242 612 done, 1 restart; #1 pid - 588 done, 2 restarts, 1 replaced"
    )
    assert workers_line(stats[:1], poisoned=1).endswith("; 1 poison")
