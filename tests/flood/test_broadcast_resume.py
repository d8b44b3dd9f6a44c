"""A broadcast goes on after its sender stops: a clean stop leaves nothing in flight and a
resume sends every chat left exactly once; a stop whose grace ran out leaves what was in
flight, sent again (at most the window); a broadcast held by a live sender is never taken by
another; a paused one stays paused; one whose build is gone, or whose token is refused, is
kept for later."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import broadcast_builds
from broadcast_support import WatchedSender, add_chats, delivered
from tgrunner.client.bot import Bot
from tgrunner.errors import Unauthorized
from tgrunner.flood.broadcast import Broadcaster, bot_sender, broadcaster_of, resume_broadcasts
from tgrunner.flood.outbox import Outbox
from tgrunner.testing import FakeTelegram, Faults

pytestmark = pytest.mark.timeout(30)

SLOW = Faults(latency=0.02, methods=frozenset({"sendMessage"}))


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as b:
        yield b


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "broadcasts.sqlite"


async def test_a_clean_stop_then_a_resume_sends_each_chat_once(
    tg: FakeTelegram, bot: Bot, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "tgrunner.flood.broadcast")
    chats = add_chats(tg, 300)
    tg.faults = SLOW
    with Outbox(path) as outbox:
        caster = Broadcaster(outbox, bot_sender(bot), window=10)
        news = await caster.start(chats, build=broadcast_builds.personal)
        await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= 50, timeout=10)
        await caster.close()
        stopped = await news.wait()  # ends when this process stops sending it
    assert stopped.state == "running" and stopped.inflight == 0 and stopped.remaining > 0
    tg.faults = None
    with Outbox(path) as outbox:
        again = await resume_broadcasts(bot, outbox)
        assert broadcaster_of(bot) is again and again.sending == [news.id]
        assert await again.resume() == []  # held here already: nothing more to take
        resumed = again.get(news.id)
        assert resumed is not None
        done = await resumed.wait()
        await again.close()
    assert (done.state, done.sent) == ("done", 300)
    assert delivered(tg) == {chat: 1 for chat in chats}
    assert any(f"broadcast {news.id} resumed (running): " in r.message for r in caplog.records)


async def test_what_was_in_flight_is_sent_again_after_an_abort(
    tg: FakeTelegram, bot: Bot, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "tgrunner.flood.broadcast")
    chats = add_chats(tg, 200)
    tg.faults = Faults(latency=0.2, methods=frozenset({"sendMessage"}))
    with Outbox(path) as outbox:
        sender = WatchedSender(bot)
        caster = Broadcaster(outbox, sender, window=8, grace=0)
        news = await caster.start(chats, "hi")
        await sender.reached(20)  # the third window is in flight
        await caster.close()  # no grace: the sends in flight are cancelled
        stopped = await news.wait()
        assert stopped.inflight > 0
        tg.faults = None
        async with Broadcaster(outbox, bot_sender(bot), window=8) as again:
            [resumed] = await again.resume()
            done = await resumed.wait()
    assert (done.state, done.sent) == ("done", 200)
    got = delivered(tg)
    assert set(got) == set(chats)
    assert sum(got.values()) - 200 <= 8  # sent twice: at most what was in flight
    line = next(r.message for r in caplog.records if "resumed" in r.message)
    assert line.endswith(f"; {stopped.inflight} chats that were in flight are sent again")


async def test_a_broadcast_held_by_a_live_sender_is_not_taken(
    tg: FakeTelegram, bot: Bot, path: Path
) -> None:
    chats = add_chats(tg, 400)
    tg.faults = SLOW
    with Outbox(path) as mine, Outbox(path) as theirs:
        caster = Broadcaster(mine, WatchedSender(bot), window=4)
        news = await caster.start(chats, "hi")
        other = Broadcaster(theirs, WatchedSender(bot), window=4)
        assert await other.resume() == []  # held: the other sender leaves it
        assert theirs.held(news.id)
        await caster.close()
        assert not theirs.held(news.id)
        tg.faults = None
        [taken] = await other.resume()
        done = await taken.wait()
        await other.close()
    assert done.sent == 400
    assert delivered(tg) == {chat: 1 for chat in chats}


async def test_a_paused_broadcast_stays_paused_after_a_restart(
    tg: FakeTelegram, bot: Bot, path: Path
) -> None:
    chats = add_chats(tg, 100)
    tg.faults = SLOW
    with Outbox(path) as outbox:
        async with Broadcaster(outbox, bot_sender(bot)) as caster:
            news = await caster.start(chats, "hi")
            await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= 5, timeout=10)
            assert await news.pause() and not await news.pause()
        tg.faults = None
        async with Broadcaster(outbox, bot_sender(bot)) as again:
            [held] = await again.resume()
            before = len(tg.calls("sendMessage"))
            assert (await held.progress()).state == "paused"
            assert await held.resume()
            done = await held.wait()
            assert len(tg.calls("sendMessage")) > before
    assert done.sent == 100 and set(delivered(tg).values()) == {1}


async def test_a_broadcast_whose_build_is_gone_is_kept(
    bot: Bot, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(path) as outbox:
        outbox.create([1, 2], build="broadcast_builds:renamed").release()
        async with Broadcaster(outbox, bot_sender(bot)) as caster:
            assert await caster.resume() == []
            assert await caster.resume() == []  # not held: tried again, refused again
        progress = outbox.progress(1)
    assert progress is not None and (progress.state, progress.pending) == ("running", 2)
    assert "broadcast 1 is not resumed: its build function broadcast_builds:renamed" in (
        caplog.text
    )


async def test_a_refused_token_stops_the_broadcast_and_keeps_it(
    tg: FakeTelegram, bot: Bot, path: Path
) -> None:
    chats = add_chats(tg, 20)
    revoked = tg.token.partition(":")[0] + ":" + "A" * 35
    with Outbox(path) as outbox:
        async with (
            Bot(revoked, api_url=tg.api_url) as wrong,
            Broadcaster(outbox, bot_sender(wrong)) as caster,
        ):
            news = await caster.start(chats, "hi")
            with pytest.raises(Unauthorized):
                await news.wait()
        kept = outbox.progress(news.id)
        assert kept is not None and (kept.state, kept.pending, kept.inflight) == ("running", 20, 0)
        async with Broadcaster(outbox, bot_sender(bot)) as good:
            [resumed] = await good.resume()
            assert (await resumed.wait()).sent == 20
    assert delivered(tg) == {chat: 1 for chat in chats}


async def test_a_process_letting_go_of_a_broadcast_rings_and_another_takes_it(
    tg: FakeTelegram, bot: Bot, path: Path
) -> None:
    """A worker replaced by SIGHUP starts its successor first: the successor's resume finds
    the broadcast held, and takes it when the old one, stopping, rings the doorbell."""
    chats = add_chats(tg, 200)
    tg.faults = SLOW
    with Outbox(path) as mine, Outbox(path) as theirs:
        caster = Broadcaster(mine, bot_sender(bot), window=4)
        news = await caster.start(chats, "hi")
        await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= 5, timeout=10)
        successor = await resume_broadcasts(bot, theirs)  # the runtime's: it listens
        assert successor.sending == [] and theirs.held(news.id)
        tg.faults = None
        await caster.close()  # lets go of it, still running, and rings
        await tg.wait_for(lambda: set(delivered(tg)) == set(chats), timeout=20)
        assert successor.sending == [] or news.id in successor.sending
        await successor.close()
    got = delivered(tg)
    assert sum(got.values()) - len(chats) <= 4  # at most the window, sent twice
