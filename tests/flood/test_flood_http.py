"""Flood control over real HTTP, against FakeTelegram enforcing Telegram's limits
(``FloodLimits``) or injecting faults (``Faults``): a 429 holds only its chat, order holds under
random 429s and 5xx, telegram mode hits no 429, the bounds fail fast, a request is resent only
when it provably never left, and ``off`` lets the 429 through."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgrunner import errors
from tgrunner.client.bot import Bot
from tgrunner.flood.buckets import Rate
from tgrunner.flood.options import FloodOptions
from tgrunner.testing import FakeTelegram, Faults, FloodLimits

QUICK = FloodOptions(backoff=0.05, max_backoff=0.2)


def texts(tg: FakeTelegram, chat: object) -> list[str]:
    return [m["text"] for m in tg.replies(chat)]


def flooded(tg: FakeTelegram) -> int:
    return sum(r.status == 429 for r in tg.calls("sendMessage"))


class _Seen(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.fixture
def logged() -> Iterator[Callable[[str], asyncio.Event]]:
    """``logged(text)``: an event set when flood control logs a line with ``text``."""
    logger = logging.getLogger("tgrunner.flood.limiter")
    level, made = logger.level, []
    logger.setLevel(logging.DEBUG)

    def watch(text: str) -> asyncio.Event:
        seen = _Seen(text)
        logger.addHandler(seen)
        made.append(seen)
        return seen.event

    yield watch
    for seen in made:
        logger.removeHandler(seen)
    logger.setLevel(level)


@pytest.mark.timeout(15)
async def test_a_429_holds_its_chat_only(
    tg: FakeTelegram, logged: Callable[[str], asyncio.Event]
) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1, private_burst=1)
    alice, bob = tg.user("Alice"), tg.user("Bob")
    loop = asyncio.get_running_loop()
    async with Bot(tg.token, api_url=tg.api_url, flood=FloodOptions()) as bot:
        await bot.send_message(alice.chat.id, "a1")
        paused = logged("429, chat paused")
        second = asyncio.create_task(bot.send_message(alice.chat.id, "a2"))
        await paused.wait()
        assert bot.flood is not None and bot.flood.paused(alice.chat.id) > 0.5
        began = loop.time()
        await bot.send_message(bob.chat.id, "b1")
        bob_took = loop.time() - began
        assert not second.done(), "Alice's pause was over before Bob was served"
        await second
        alice_took = loop.time() - began
    assert bob_took < 0.3, f"Bob waited {bob_took:.2f} s behind Alice's pause"
    assert alice_took >= 0.5
    assert texts(tg, alice) == ["a1", "a2"]
    assert texts(tg, bob) == ["b1"]


# Each 429 of the fake costs its chat a second (retry_after is at least 1): a few examples.
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    flood_rate=st.floats(0.05, 0.25),
    error_rate=st.floats(0, 0.3),
    seed=st.integers(0, 1000),
)
@pytest.mark.timeout(40)
def test_order_within_each_chat_holds_under_random_429s_and_5xx(
    counts: list[int], flood_rate: float, error_rate: float, seed: int
) -> None:
    async def scenario() -> None:
        faults = Faults(
            flood_rate=flood_rate,
            error_rate=error_rate,
            retry_after=1,
            seed=seed,
            methods=frozenset({"sendMessage"}),
        )
        async with FakeTelegram(faults=faults) as tg:
            users = [tg.user(f"U{i}") for i in range(len(counts))]
            options = FloodOptions(backoff=0.02, max_backoff=0.1, retries=20)
            async with Bot(tg.token, api_url=tg.api_url, flood=options) as bot:

                async def sender(user: object, count: int) -> None:
                    for n in range(count):
                        await bot.send_message(user.chat.id, f"m{n}")  # type: ignore[attr-defined]

                await asyncio.gather(*(sender(u, k) for u, k in zip(users, counts, strict=True)))
            for user, count in zip(users, counts, strict=True):
                assert texts(tg, user) == [f"m{n}" for n in range(count)]

    asyncio.run(scenario())


@pytest.mark.timeout(20)
async def test_telegram_mode_hits_no_429_at_telegrams_limits(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1, private_burst=3, global_per_second=30)
    users = [tg.user(f"U{i}") for i in range(3)]
    group = tg.group("G", members=users[:1])
    options = FloodOptions(mode="telegram", group=Rate(1.0, 1))  # the fake: 1/s, no burst
    async with Bot(tg.token, api_url=tg.api_url, flood=options) as bot:

        async def sender(chat_id: int, count: int) -> None:
            for n in range(count):
                await bot.send_message(chat_id, f"m{n}")

        chats = [u.chat.id for u in users]
        await asyncio.gather(*(sender(c, 5) for c in chats), sender(group.id, 3))
    assert flooded(tg) == 0
    for chat in chats:
        assert texts(tg, chat) == [f"m{n}" for n in range(5)]
    assert texts(tg, group.id) == ["m0", "m1", "m2"]


@pytest.mark.timeout(20)
async def test_broadcasts_are_paced_at_the_bulk_rate_in_every_mode(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(global_per_second=20)
    users = [tg.user(f"U{i}") for i in range(40)]
    loop = asyncio.get_running_loop()
    async with Bot(tg.token, api_url=tg.api_url, flood=FloodOptions(bulk=Rate(20, 20))) as bot:
        began = loop.time()
        await asyncio.gather(
            *(bot.request("sendMessage", {"chat_id": u.chat.id, "text": "news"}, bulk=True)
              for u in users)
        )  # fmt: skip
        took = loop.time() - began
    assert flooded(tg) == 0
    assert all(texts(tg, u) == ["news"] for u in users)
    assert 0.9 <= took < 3, took  # 20 at once, then 20 more at 20/s


@pytest.mark.timeout(15)
async def test_a_wait_over_max_wait_fails_at_once(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(per_chat_per_second=0.2, private_burst=1)  # retry after 5 s
    alice = tg.user("Alice")
    loop = asyncio.get_running_loop()
    async with Bot(tg.token, api_url=tg.api_url, flood=FloodOptions(max_wait=1)) as bot:
        await bot.send_message(alice.chat.id, "one")
        began = loop.time()
        with pytest.raises(errors.FloodLimited) as refused:
            await bot.send_message(alice.chat.id, "two")
        with pytest.raises(errors.RetryAfter, match="max_wait"):
            await bot.send_message(alice.chat.id, "three")
        assert loop.time() - began < 0.5
    assert refused.value.error_code == 429 and refused.value.method == "sendMessage"
    assert refused.value.retry_after is not None and refused.value.retry_after > 4
    assert texts(tg, alice) == ["one"]


@pytest.mark.timeout(15)
async def test_telegram_mode_refuses_at_once_what_its_bucket_cannot_send_in_time(
    tg: FakeTelegram,
) -> None:
    alice = tg.user("Alice")
    options = FloodOptions(mode="telegram", private=Rate(1, 1), max_wait=1.5)
    loop = asyncio.get_running_loop()
    async with Bot(tg.token, api_url=tg.api_url, flood=options) as bot:
        began = loop.time()
        sends = [asyncio.create_task(bot.send_message(alice.chat.id, f"m{n}")) for n in range(4)]
        done, _ = await asyncio.wait(sends[2:])
        assert loop.time() - began < 0.3  # the third would leave at 2 s, the fourth at 3 s
        assert all(isinstance(t.exception(), errors.FloodLimited) for t in done)
        await asyncio.gather(*sends[:2])
    assert texts(tg, alice) == ["m0", "m1"]


@pytest.mark.timeout(15)
async def test_a_full_chat_queue_fails_at_once(
    tg: FakeTelegram, logged: Callable[[str], asyncio.Event]
) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1, private_burst=1)
    alice = tg.user("Alice")
    async with Bot(tg.token, api_url=tg.api_url, flood=FloodOptions(max_queue=1)) as bot:
        await bot.send_message(alice.chat.id, "m0")
        paused = logged("429, chat paused")
        holder = asyncio.create_task(bot.send_message(alice.chat.id, "m1"))  # gets the 429
        await paused.wait()
        waiting = asyncio.create_task(bot.send_message(alice.chat.id, "m2"))
        await asyncio.sleep(0)
        with pytest.raises(errors.FloodLimited, match="max_queue"):
            await bot.send_message(alice.chat.id, "m3")
        await asyncio.gather(holder, waiting)
    assert texts(tg, alice) == ["m0", "m1", "m2"]


@pytest.mark.timeout(15)
async def test_a_send_that_never_left_is_sent_again(
    logged: Callable[[str], asyncio.Event],
) -> None:
    with socket.socket() as probe:  # a port nothing listens on, until the fake does
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tg = FakeTelegram(port=port)
    alice = tg.user("Alice")
    options = FloodOptions(backoff=1.0, max_backoff=1.0)  # resent after 0.5 to 1 s
    async with Bot(tg.token, api_url=f"http://127.0.0.1:{port}", flood=options) as bot:
        resent = logged("resending after")
        sending = asyncio.create_task(bot.send_message(alice.chat.id, "hello"))
        await resent.wait()  # refused: it never left
        async with tg:
            assert (await sending)["text"] == "hello"
            assert texts(tg, alice) == ["hello"]
            assert bot.flood is not None and bot.flood.stats.resends == 1


@pytest.mark.timeout(15)
async def test_a_send_that_may_have_arrived_is_never_sent_again(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    tg.faults = Faults(reset_rate=1.0, methods=frozenset({"sendMessage", "getChat"}))
    async with Bot(tg.token, api_url=tg.api_url, flood=QUICK) as bot:
        assert bot.flood is not None
        with pytest.raises(errors.NetworkError, match="sendMessage"):
            await bot.send_message(alice.chat.id, "once")
        assert bot.flood.stats.resends == 0
        with pytest.raises(errors.NetworkError, match="getChat"):
            await bot.get_chat(alice.chat.id)  # safe to repeat: tried 1 + 3 times
        assert bot.flood.stats.resends == 3


@pytest.mark.timeout(15)
async def test_5xx_is_resent_a_bounded_number_of_times(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    tg.faults = Faults(error_rate=1.0, methods=frozenset({"sendMessage"}))
    async with Bot(tg.token, api_url=tg.api_url, flood=QUICK) as bot:
        with pytest.raises(errors.ServerError):
            await bot.send_message(alice.chat.id, "x")
    assert [r.status // 100 for r in tg.calls("sendMessage")] == [5, 5, 5, 5]


@pytest.mark.timeout(15)
async def test_off_lets_the_429_through(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1, private_burst=1)
    alice = tg.user("Alice")
    async with Bot(tg.token, api_url=tg.api_url, flood=FloodOptions(mode="off")) as bot:
        assert bot.flood is None
        await bot.send_message(alice.chat.id, "one")
        with pytest.raises(errors.RetryAfter) as flood:
            await bot.send_message(alice.chat.id, "two")
    assert not isinstance(flood.value, errors.FloodLimited)
    assert flood.value.retry_after == 1
