"""PTB on tgrunner keeps per-chat order under concurrency, ``block=False`` handlers included;
ConversationHandler, JobQueue and PicklePersistence work, flushed at stop and read back on
restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from telegram.ext import PicklePersistence

from frontends.ptb import ptb_sample
from frontends.ptb.helpers import (
    AnyApp,
    events,
    example,
    on_tgrunner,
    until_events,
)
from replies import replied, send_round, tally
from tgrunner.testing import FakeTelegram

# -- order and concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize("block", [True, False], ids=["blocking", "block=False"])
@pytest.mark.timeout(60)
async def test_order_holds_under_concurrency(tg: FakeTelegram, block: bool) -> None:
    ptb_sample.load.peak = 0
    app = ptb_sample.build(tg.token, api_url=tg.api_url, block=block)
    users = [tg.user(f"U{i}") for i in range(40)]
    sent: dict[int, list[str]] = {}
    n = 0
    for _ in range(4):  # a backlog, waiting before the bot starts
        n = send_round(users, sent, n)
    async with on_tgrunner(app):
        for _ in range(4):  # and more while it works
            n = send_round(users, sent, n)
            await asyncio.sleep(0)
        await tg.wait_for(lambda: replied(tg) >= n, timeout=30)
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert ptb_sample.load.peak > 1, "handlers never ran concurrently"
    assert tg.pending_updates == 0


# -- conversation, job queue, persistence ------------------------------------------------------


@pytest.mark.timeout(60)
async def test_conversation_jobs_and_persistence_survive_a_restart(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    path = tmp_path / "bot.pickle"

    def build() -> AnyApp:
        app: AnyApp = example.build(
            tg.token, api_url=tg.api_url, persistence_path=path, remind_seconds=0.01
        )
        return app

    alice = tg.user("Alice")
    chat = alice.chat.id
    async with on_tgrunner(build()):
        alice.send("/start")
        await until_events(tg, chat, 1)
        alice.press(tg.replies(chat)[0], "count")
        for text in ("/remind", "/order", "L"):
            alice.send(text)
        await until_events(tg, chat, 6)  # count, reminder set + job, two conversation steps
    # The job runs beside the updates that follow: its message may come anywhere after.
    sent = events(tg)[chat]
    assert sent.index("sendMessage: Reminder!") > sent.index("sendMessage: Reminder set.")
    assert [t for t in sent if t != "sendMessage: Reminder!"][2:] == [
        "sendMessage: Reminder set.",
        "sendMessage: What size? S, M or L",
        "sendMessage: Whose name goes on it?",
    ]
    stored = PicklePersistence(path)
    assert (await stored.get_user_data())[alice.id]["count"] == 1
    assert (await stored.get_conversations("order")) == {(chat, alice.id): example.NAME}

    # A new process: the counter and the half-done conversation come back from the file.
    async with on_tgrunner(build()):
        alice.press(tg.replies(chat)[0], "count")
        alice.send("Alice")
        await until_events(tg, chat, 8)
    assert events(tg)[chat][6:] == [
        "editMessageText: Count: 2",
        "sendMessage: A size L T-shirt for Alice. Confirm? yes or no",
    ]
    assert (await PicklePersistence(path).get_user_data())[alice.id]["count"] == 2
