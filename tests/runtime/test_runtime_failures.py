"""A failure of the runtime itself, not of a handler, gets the clean stop and is then raised:
fetching stops, the update already running finishes and its reply is sent, what finished is
confirmed, and ``serve()`` raises the failure. The cases: an answer that is not a list of
updates (``BadAnswer``) and a full journal (SQLite's ``database or disk is full``)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest
from runtime_support import FAST, LogWatch, echo, make_runner, serving, until

from tgrunner.client.bot import Bot
from tgrunner.errors import BadAnswer
from tgrunner.intake.journal import Journal
from tgrunner.intake.options import IntakeOptions
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram, Faults

# The runner's log line once it acts on a failure of fetching.
FAILED = "stopping cleanly"


class Held:
    """A handler that replies "working" and holds the update until released, then replies
    "done"; other messages are echoed."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, update: dict[str, Any], bot: Bot) -> None:
        message = update["message"]
        if message.get("text") != "hold":
            await echo(update, bot)
            return
        self.entered.set()
        await self.release.wait()
        await bot.send_message(message["chat"]["id"], "done")


def _unfinished(runner: Runner) -> list[dict[str, Any]]:
    """What the runner's journal still holds; opening it also proves it was unlocked."""
    assert isinstance(runner.intake, Journal)
    journal = Journal(runner.intake.path, bot_id=runner.bot.id)
    try:
        return journal.unfinished()
    finally:
        journal.close_now()


@pytest.mark.parametrize(
    ("mode", "answer"),
    [("journal", b'{"ok":true,"result":[1,2]}'), ("strict", b'{"ok":true,"result":{}}')],
)
async def test_a_bad_answer_stops_cleanly_then_is_raised(
    tg: FakeTelegram, mode: str, answer: bytes
) -> None:
    held = Held()
    settings = Settings(polling=FAST, grace=10.0, intake=IntakeOptions(journal=mode == "journal"))
    runner = make_runner(tg.api_url, tg.token, held, settings=settings)
    alice = tg.user("Alice")
    with LogWatch(FAILED) as failed:
        task = serving(runner)
        alice.send("hold")
        await until(held.entered.wait(), task)
        tg.faults = Faults(answer=answer, methods=frozenset({"getUpdates"}))
        await until(failed.wait(), task)
        assert not task.done(), "serve() ended without waiting for the running handler"
        tg.faults = None  # the server answers properly again, for the final confirmation
        held.release.set()
        with pytest.raises(BadAnswer, match="not a list of updates"):
            async with asyncio.timeout(10):
                await task
    assert [m["text"] for m in tg.replies(alice)] == ["done"]  # drained, and its reply sent
    assert tg.pending_updates == 0  # what finished is confirmed
    if mode == "journal":
        assert _unfinished(runner) == []


async def test_a_full_journal_stops_cleanly_then_is_raised(tg: FakeTelegram) -> None:
    held = Held()
    runner = make_runner(tg.api_url, tg.token, held)
    alice, bob = tg.user("Alice"), tg.user("Bob")
    with LogWatch(FAILED) as failed:
        task = serving(runner)
        alice.send("hold")
        await until(held.entered.wait(), task)
        # Fill the journal: SQLite refuses to grow it past its current pages, as when the
        # disk is full. The limit is a setting of a connection, not of the file, so it is
        # set on the runtime's own connection; the next restart opens the file without it.
        assert isinstance(runner.intake, Journal)
        db: sqlite3.Connection = runner.intake._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        bob.send("x" * 4000)  # more than a page: it cannot be journaled
        await until(failed.wait(), task)
        assert not task.done(), "serve() ended without waiting for the running handler"
        held.release.set()
        with pytest.raises(sqlite3.OperationalError, match="full"):
            async with asyncio.timeout(10):
                await task
    assert [m["text"] for m in tg.replies(alice)] == ["done"]
    # Confirmed: what was journaled (Alice's, finished and marked so); not Bob's, which the
    # journal refused: Telegram keeps it.
    assert tg.pending_updates == 1
    assert _unfinished(runner) == []

    # The next start, with room in the journal, handles Bob's update and repeats nothing.
    again = make_runner(tg.api_url, tg.token, held)
    task = serving(again)
    [reply] = await tg.wait_for_replies(bob, 1, timeout=10)
    assert reply["text"] == "x" * 4000
    again.stop()
    async with asyncio.timeout(10):
        assert await task == 0
    assert [m["text"] for m in tg.replies(alice)] == ["done"]
