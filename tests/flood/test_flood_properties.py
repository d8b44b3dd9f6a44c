"""FloodControl's promises as properties, against an in-process server (the ``exchange`` each
call gets answers 200, 429 with a short retry_after, 5xx, or fails to connect, at random):

- each chat's messages are delivered once each, in the order its sender made them, whatever
  the answers; a 429 or a 5xx never delivers, so a resend is never a duplicate;
- nothing of a chat is on the wire twice at once while the chat has a lane;
- once everything is sent and the pauses are over, no lane is left (flat memory);
- a caller cancelled while it waits hands its chat's turn on.

The HTTP tests (test_flood_http.py) check the same against FakeTelegram, with real seconds.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest
from flood_support import OK, Answer, answers, no_lanes, too_many
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgrunner.client.transports.errors import TransportError
from tgrunner.errors import FloodLimited
from tgrunner.flood.limiter import FloodControl
from tgrunner.flood.options import FloodOptions

FAST = FloodOptions(backoff=0.001, max_backoff=0.004, retries=50)


class Server:
    """Delivers or refuses each exchange by a seeded draw; records what it delivered."""

    def __init__(self, seed: int, flood: float, errors: float, refused: float) -> None:
        self.rng = random.Random(seed)
        self.flood, self.errors, self.refused = flood, errors, refused
        self.delivered: dict[int, list[int]] = defaultdict(list)
        self.on_wire: dict[int, int] = defaultdict(int)
        self.overlap = False

    def exchange(self, chat: int, n: int) -> Any:
        async def send() -> Answer:
            if self.on_wire[chat]:
                self.overlap = True
            self.on_wire[chat] += 1
            try:
                await asyncio.sleep(self.rng.random() * 0.002)
                roll = self.rng.random()
                if roll < self.refused:
                    raise TransportError("refused", sent=False)
                roll -= self.refused
                if roll < self.flood:
                    return too_many(0.005)
                if roll < self.flood + self.errors:
                    return Answer(502, b"bad gateway")
                self.delivered[chat].append(n)
                return OK
            finally:
                self.on_wire[chat] -= 1

        return send


# Each 429 pauses its chat for 5 ms plus the jitter (at least 50 ms): kept few, for time.
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    flood=st.floats(0, 0.3),
    errors=st.floats(0, 0.3),
    refused=st.floats(0, 0.2),
    seed=st.integers(0, 2**16),
)
def test_each_chat_gets_its_messages_once_in_order(
    counts: list[int], flood: float, errors: float, refused: float, seed: int
) -> None:
    async def scenario() -> None:
        control = FloodControl(FAST)
        server = Server(seed, flood, errors, refused)

        async def sender(chat: int, count: int) -> None:
            for n in range(count):
                answer = await control.call("sendMessage", chat, server.exchange(chat, n))
                assert answer.status == 200

        async with asyncio.timeout(10):
            await asyncio.gather(*(sender(c, k) for c, k in enumerate(counts, start=1)))
        for chat, count in enumerate(counts, start=1):
            assert server.delivered[chat] == list(range(count))
        assert not server.overlap
        await no_lanes(control, range(1, len(counts) + 1))

    asyncio.run(scenario())


@pytest.mark.timeout(10)
async def test_calls_made_at_once_into_a_paused_chat_leave_one_at_a_time_in_order() -> None:
    control = FloodControl(FAST)
    server = Server(seed=1, flood=0.3, errors=0.1, refused=0.0)
    assert (await control.call("sendMessage", 7, answers(too_many(0.05)))).status == 200
    # That call went straight out, got a 429, waited and was sent again; now a pause that
    # lasts while the calls below are made.
    served = asyncio.Event()
    paused = asyncio.create_task(
        control.call("sendMessage", 7, answers(too_many(0.1), served=served))
    )
    await served.wait()
    assert control.paused(7) > 0

    calls = [control.call("sendMessage", 7, server.exchange(7, n)) for n in range(10)]
    await asyncio.gather(*calls)
    await paused
    assert server.delivered[7] == list(range(10))
    assert not server.overlap


@pytest.mark.timeout(10)
async def test_a_caller_cancelled_while_waiting_hands_the_turn_on() -> None:
    control = FloodControl(FAST)
    server = Server(seed=2, flood=0.0, errors=0.0, refused=0.0)
    served = asyncio.Event()
    holder = asyncio.create_task(
        control.call("sendMessage", 5, answers(too_many(0.1), served=served))
    )
    await served.wait()
    assert control.paused(5) > 0
    # Chat 5 is paused for ~0.15 s: both calls wait in its lane, behind the first.
    doomed = asyncio.create_task(control.call("sendMessage", 5, server.exchange(5, 0)))
    kept = asyncio.create_task(control.call("sendMessage", 5, server.exchange(5, 1)))
    await asyncio.sleep(0.01)
    doomed.cancel()
    assert (await kept).status == 200
    assert (await holder).status == 200
    assert doomed.cancelled()
    assert server.delivered[5] == [1]
    await no_lanes(control, range(5, 6))


@pytest.mark.timeout(10)
async def test_a_pause_longer_than_max_wait_fails_the_waiting_calls_at_once() -> None:
    control = FloodControl(FloodOptions(max_wait=0.5))
    server = Server(seed=3, flood=0.0, errors=0.0, refused=0.0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(FloodLimited) as refused:
        await control.call("sendMessage", 9, answers(too_many(30)))
    assert refused.value.retry_after is not None and 29 < refused.value.retry_after < 34
    assert refused.value.error_code == 429
    with pytest.raises(FloodLimited, match="not sent into chat 9"):
        await control.call("sendMessage", 9, server.exchange(9, 0))
    assert loop.time() - began < 0.2
    assert server.delivered[9] == []
    # Another chat is not held.
    assert (await control.call("sendMessage", 10, server.exchange(10, 0))).status == 200


@pytest.mark.timeout(10)
async def test_a_call_on_the_wire_when_its_chat_was_paused_goes_first_after_the_pause() -> None:
    control = FloodControl(FAST)
    server = Server(seed=4, flood=0.0, errors=0.0, refused=0.0)
    release = asyncio.Event()
    state = {"a": 0}

    async def slow_a() -> Answer:
        state["a"] += 1
        if state["a"] == 1:  # on the wire while the chat gets paused; then refused too
            await release.wait()
            return too_many(0.05)
        server.delivered[3].append(0)
        return OK

    a = asyncio.create_task(control.call("sendMessage", 3, slow_a))
    await asyncio.sleep(0)  # a is on the wire, straight out (no lane yet)
    served = asyncio.Event()
    b = asyncio.create_task(control.call("sendMessage", 3, answers(too_many(0.05), served=served)))
    await served.wait()
    assert control.paused(3) > 0
    c = asyncio.create_task(control.call("sendMessage", 3, server.exchange(3, 2)))
    await asyncio.sleep(0.01)  # c waits in the lane, behind b
    release.set()
    await asyncio.gather(a, b, c)
    # b held the turn; a came back with its 429 and went before c, made after it.
    assert server.delivered[3] == [0, 2]
