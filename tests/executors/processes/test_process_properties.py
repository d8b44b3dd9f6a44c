"""Worker processes under random workloads (hypothesis): random chats, some updates sharing a
second key across chats, and workers SIGKILLed at random points. Whatever happens, each key's
updates are handled in order (a redone update's reply may repeat, right after itself), none
is lost, and the repeats are no more than what the killed workers had in flight."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proc_harness import BOTS, check_replies, fetch_updates, harness

from tgrunner.testing import FakeTelegram

SHARED = "shared"


@dataclass(frozen=True)
class Scenario:
    chats: tuple[int, ...]  # the chat of each update, in order
    shared: tuple[bool, ...]  # which updates also take the SHARED key
    kills: tuple[tuple[int, int], ...]  # (after this many replies, kill this slot)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(20, 60))
    chats = draw(st.lists(st.integers(0, 5), min_size=count, max_size=count))
    shared = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    kills = draw(st.lists(st.tuples(st.integers(1, count - 1), st.integers(0, 1)), max_size=2))
    return Scenario(tuple(chats), tuple(shared), tuple(sorted(kills)))


def keys(update: dict[str, Any]) -> tuple[Hashable, ...]:
    message = update["message"]
    chat = f"c:{message['chat']['id']}"
    return (chat, SHARED) if message["text"].endswith("*") else (chat,)


async def run(scenario: Scenario) -> None:
    async with FakeTelegram() as tg:
        users = [tg.user(f"user{i}") for i in range(6)]
        sent: dict[int, list[str]] = {i: [] for i in range(6)}
        for index, (chat, shared) in enumerate(zip(scenario.chats, scenario.shared, strict=True)):
            text = f"{index}*" if shared else str(index)
            users[chat].send(text)
            sent[chat].append(text)
        updates = await fetch_updates(tg, len(scenario.chats))
        async with harness(tg, share=4, concurrency=8, keys=keys) as h:
            feeding = asyncio.ensure_future(h.submit(updates))
            bound = 0
            for after, slot in scenario.kills:
                await tg.wait_for(lambda a=after: len(tg.calls("sendMessage")) >= a, timeout=20)
                stat = h.executor.stats()[slot]
                if stat.state != "ready":
                    continue
                bound += stat.in_flight
                pid = h.kill(slot)
                await h.wait_event("died", lambda e, p=pid: e.pid == p)
            await feeding
            await h.drain()
            assert h.errors == []
        repeats = sum(check_replies(tg, users[c], sent[c]) for c in range(6))
        assert repeats <= bound
        # Updates sharing the second key were handled one at a time, in update order,
        # whichever chat (and so whichever worker) they belong to.
        texts = [r.params["text"] for r in tg.calls("sendMessage")]
        shared_texts = [t for t in texts if t.endswith("*")]
        distinct = [t for i, t in enumerate(shared_texts) if i == 0 or shared_texts[i - 1] != t]
        assert distinct == [f"{i}*" for i, shared in enumerate(scenario.shared) if shared]


@pytest.mark.slow
@pytest.mark.timeout(240)
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenarios())
def test_random_keys_and_kills_keep_order_lose_nothing_and_bound_repeats(
    scenario: Scenario,
) -> None:
    sys.path.insert(0, str(BOTS))
    try:
        asyncio.run(run(scenario))
    finally:
        sys.path.remove(str(BOTS))
