"""Broadcasts over real HTTP against FakeTelegram: each chat gets the message once, blocked and
missing chats are recorded as such, other 400s as failed with Telegram's words, the window
bounds the sends in flight, and a build function gives each chat its own message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import broadcast_builds
from broadcast_support import WatchedSender, add_chats, delivered, recipient_states
from tgrunner.client.bot import Bot
from tgrunner.errors import BadRequest
from tgrunner.flood.broadcast import Broadcaster, bot_sender, broadcast, broadcaster_of
from tgrunner.flood.outbox import Outbox
from tgrunner.testing import FakeTelegram, Faults

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as b:
        yield b


@pytest.fixture
def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    with Outbox(tmp_path / "broadcasts.sqlite") as box:
        yield box


async def test_every_chat_gets_the_message_once(tg: FakeTelegram, bot: Bot, outbox: Outbox) -> None:
    chats = add_chats(tg, 500)
    sender = WatchedSender(bot)
    async with Broadcaster(outbox, sender, window=20) as caster:
        news = await caster.start([*chats, *chats[:10]], "news!", parse_mode="HTML")
        done = await news.wait()
    assert done.state == "done"
    assert (done.total, done.sent, done.remaining) == (500, 500, 0)  # each chat once
    assert delivered(tg) == {chat: 1 for chat in chats}
    assert {r.params["text"] for r in tg.calls("sendMessage")} == {"news!"}
    assert {r.params["parse_mode"] for r in tg.calls("sendMessage")} == {"HTML"}
    assert 1 < sender.most <= 20  # concurrent, and never more than the window
    ids = [m for _, m, _ in outbox.chats(news.id, "sent")]
    assert len(ids) == 500 and all(isinstance(m, int) for m in ids)  # message ids kept
    assert outbox.progress(news.id) == done


async def test_blocked_missing_and_failed_chats_are_recorded(
    tg: FakeTelegram, bot: Bot, outbox: Outbox
) -> None:
    alice, bob = tg.user("Alice"), tg.user("Bob")
    bob.block_bot()
    team = tg.supergroup("Team", members=[alice])
    team.kick_bot()
    chats = [*add_chats(tg, 10), alice.id, bob.id, team.id, 424242, "@nobody_here"]
    async with Broadcaster(outbox, WatchedSender(bot)) as caster:
        done = await (await caster.start(chats, "hi")).wait()
        odd = await (await caster.start(chats[:10], build=broadcast_builds.empty_for_odd)).wait()
    assert (done.sent, done.blocked, done.missing, done.failed) == (11, 2, 2, 0)
    states = recipient_states(outbox.path, done.id)
    assert states[bob.id] == states[team.id] == "blocked"
    assert states[424242] == states["@nobody_here"] == "missing"
    errors = {chat: error for chat, _, error in outbox.chats(done.id, "blocked")}
    assert errors == {
        bob.id: "Forbidden: bot was blocked by the user",
        team.id: "Forbidden: bot was kicked from the supergroup chat",
    }
    assert outbox.chats(done.id, "missing")[0][2] == "Bad Request: chat not found"
    assert (odd.sent, odd.failed) == (5, 5)  # odd ids: an empty text
    failed = {error for _, _, error in outbox.chats(odd.id, "failed")}
    assert failed == {"Bad Request: message text is empty"}


async def test_a_build_gives_each_chat_its_own_message(
    tg: FakeTelegram, bot: Bot, outbox: Outbox
) -> None:
    chats = add_chats(tg, 40)
    async with Broadcaster(outbox, WatchedSender(bot)) as caster:
        first = await caster.start(chats[:20], build=broadcast_builds.personal)
        second = await caster.start(chats[20:], build=broadcast_builds.personal_later)
        assert (await first.wait()).sent == (await second.wait()).sent == 20
    texts = {r.params["chat_id"]: r.params["text"] for r in tg.calls("sendMessage")}
    assert texts == {chat: f"hello {chat}" for chat in chats}
    quiet = [r for r in tg.calls("sendMessage") if r.params.get("disable_notification")]
    assert len(quiet) == 20


async def test_a_failing_build_fails_its_chat_only(
    tg: FakeTelegram, bot: Bot, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    chats = add_chats(tg, 6)
    async with Broadcaster(outbox, WatchedSender(bot)) as caster:
        raising = await (await caster.start(chats, build=broadcast_builds.raises_for_odd)).wait()
        wrong = await (await caster.start(chats[:2], build=broadcast_builds.not_a_dict)).wait()
    assert (raising.sent, raising.failed) == (3, 3)
    errors = [e for _, _, e in outbox.chats(raising.id, "failed")]
    assert errors == [f"build failed: LookupError: no name for {c}" for c in chats[1::2]]
    assert wrong.failed == 2
    assert "not a dict of sendMessage parameters" in outbox.chats(wrong.id, "failed")[0][2]
    assert sum("build failed" in r.message for r in caplog.records) == 2  # once per broadcast


async def test_paid_sets_allow_paid_broadcast(tg: FakeTelegram, bot: Bot, outbox: Outbox) -> None:
    chats = add_chats(tg, 3)
    async with Broadcaster(outbox, WatchedSender(bot)) as caster:
        await (await caster.start(chats, "stars", paid=True)).wait()
    assert all(r.params.get("allow_paid_broadcast") is True for r in tg.calls("sendMessage"))


async def test_a_429_holds_every_send_for_its_retry_after(
    tg: FakeTelegram, bot: Bot, outbox: Outbox
) -> None:
    chats = add_chats(tg, 30)
    tg.faults = Faults(flood_rate=1.0, retry_after=1, methods=frozenset({"sendMessage"}))
    async with Broadcaster(outbox, WatchedSender(bot), window=5) as caster:
        news = await caster.start(chats, "later")
        first = await tg.wait_for_call("sendMessage", where=lambda r: r.status == 429)
        tg.faults = None
        done = await news.wait()
    assert done.sent == 30
    assert delivered(tg) == {chat: 1 for chat in chats}
    sent = [r.time for r in tg.calls("sendMessage") if r.ok]
    assert min(sent) - first.time >= 0.9  # nothing left before the retry_after


async def test_a_5xx_backs_off_and_sends_again(tg: FakeTelegram, bot: Bot, outbox: Outbox) -> None:
    chats = add_chats(tg, 10)
    tg.faults = Faults(error_rate=1.0, methods=frozenset({"sendMessage"}))
    async with Broadcaster(outbox, WatchedSender(bot), window=3) as caster:
        news = await caster.start(chats, "after the storm")
        await tg.wait_for_call("sendMessage", where=lambda r: r.status >= 500)
        tg.faults = None
        done = await news.wait()
    assert (done.sent, done.failed) == (10, 0)
    assert delivered(tg) == {chat: 1 for chat in chats}


async def test_a_send_that_may_have_left_is_not_sent_again(
    tg: FakeTelegram, bot: Bot, outbox: Outbox
) -> None:
    chats = add_chats(tg, 4)
    tg.faults = Faults(reset_rate=1.0, methods=frozenset({"sendMessage"}))
    async with Broadcaster(outbox, WatchedSender(bot)) as caster:
        done = await (await caster.start(chats, "lost?")).wait()
    assert (done.sent, done.failed) == (0, 4)
    assert all("not sent again" in e for _, _, e in outbox.chats(done.id, "failed"))
    assert len(tg.calls("sendMessage")) == 0  # reset before running: nothing recorded twice


async def test_progress_is_logged(
    tg: FakeTelegram, bot: Bot, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "tgrunner.flood.broadcast")
    chats = add_chats(tg, 250)
    async with Broadcaster(outbox, WatchedSender(bot), log_every=100) as caster:
        done = await (await caster.start(chats, "hi")).wait()
    lines = [r.getMessage() for r in caplog.records if r.name == "tgrunner.flood.broadcast"]
    lines = lines[lines.index(f"broadcast {done.id}: sending to 250 chats") :]
    marks = [int(line.split()[2].split("/")[0]) for line in lines[1:-1]]
    assert [mark // 100 for mark in marks] == [1, 2]  # one line per 100 chats
    assert lines[-1].startswith(f"broadcast {done.id} done in ")
    assert lines[-1].endswith("250/250 done (250 sent, 0 blocked, 0 missing, 0 failed)")


async def test_broadcast_uses_the_bots_outbox_in_the_data_dir(
    tg: FakeTelegram, bot: Bot, data_dir: Path
) -> None:
    chats = add_chats(tg, 5)
    news = await broadcast(bot, chats, "from the data dir")
    assert broadcaster_of(bot) is not None
    done = await news.wait()
    assert done.sent == 5
    await asyncio.sleep(0)
    assert broadcaster_of(bot) is None  # its own broadcaster closed once nothing was left
    path = data_dir / str(bot.id) / "broadcasts.sqlite"
    assert set(recipient_states(path, done.id).values()) == {"sent"}
    assert not await news.cancel()  # done: nothing to cancel, though its outbox is closed
    again = await (await broadcast(bot, chats[:1], "and again", outbox=path)).wait()
    assert (again.id, again.sent) == (done.id + 1, 1)


async def test_an_empty_broadcast_is_done_at_once(bot: Bot, outbox: Outbox) -> None:
    async with Broadcaster(outbox, WatchedSender(bot)) as caster:
        done = await (await caster.start([], "nobody")).wait()
    assert (done.state, done.total) == ("done", 0)


class Upgraded:
    """A sender in front of the bot's, answering for one group as Telegram does once the
    group became a supergroup (400 with ``migrate_to_chat_id``)."""

    def __init__(self, bot: Bot, group: int, supergroup: int) -> None:
        self.send = bot_sender(bot)
        self.group, self.supergroup = group, supergroup

    async def __call__(self, method: str, params: Mapping[str, Any], paid: bool) -> Any:
        if params["chat_id"] == self.group:
            raise BadRequest(
                method,
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=self.supergroup,
            )
        return await self.send(method, params, paid)


async def test_a_group_that_became_a_supergroup_is_sent_to_at_its_new_id(
    tg: FakeTelegram, bot: Bot, outbox: Outbox
) -> None:
    team = tg.supergroup("Team", members=[tg.user("Alice")])
    async with Broadcaster(outbox, Upgraded(bot, -4242, team.id)) as caster:
        done = await (await caster.start([-4242], "moved")).wait()
    assert done.sent == 1
    assert [r.params["chat_id"] for r in tg.calls("sendMessage")] == [team.id]


class PacedBot:
    """What bot_sender asks of a Bot whose request() takes bulk= and paid= (the flood
    limiter's): each call, as made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        bulk: bool = False,
        paid: bool = False,
    ) -> Any:
        self.calls.append((method, dict(params or {}), {"bulk": bulk, "paid": paid}))
        return {"message_id": len(self.calls)}


async def test_the_sender_marks_each_send_bulk_for_the_limiter(outbox: Outbox) -> None:
    paced = PacedBot()
    async with Broadcaster(outbox, bot_sender(paced)) as caster:
        await (await caster.start([1, 2], "free")).wait()
        await (await caster.start([3], "paid", paid=True)).wait()
    assert [(c[1]["chat_id"], c[2]) for c in paced.calls] == [
        (1, {"bulk": True, "paid": False}),
        (2, {"bulk": True, "paid": False}),
        (3, {"bulk": True, "paid": True}),
    ]
