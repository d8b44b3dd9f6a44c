"""Worker processes under random workloads (hypothesis): random chats, some updates sharing a
second key across chats, workers SIGKILLed at random points, and maybe one handler that
blocks its worker's event loop (a hang, seen by the heartbeat). Whatever happens, each key's
updates are handled in order (a redone update's reply may repeat, right after itself), none
is lost, and the repeats are no more than what the dead workers had in flight."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
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
    hang: int | None  # the update that blocks its worker the first time it runs


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(20, 60))
    chats = draw(st.lists(st.integers(0, 5), min_size=count, max_size=count))
    shared = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    kills = draw(st.lists(st.tuples(st.integers(1, count - 1), st.integers(0, 1)), max_size=2))
    hang = draw(st.none() | st.integers(0, count - 1))
    return Scenario(tuple(chats), tuple(shared), tuple(sorted(kills)), hang)


def keys(update: dict[str, Any]) -> tuple[Hashable, ...]:
    message = update["message"]
    chat = f"c:{message['chat']['id']}"
    return (chat, SHARED) if message["text"].endswith("*") else (chat,)


async def run(scenario: Scenario) -> None:
    async with FakeTelegram() as tg:
        users = [tg.user(f"user{i}") for i in range(6)]
        sent: dict[int, list[str]] = {i: [] for i in range(6)}
        for index, (chat, shared) in enumerate(zip(scenario.chats, scenario.shared, strict=True)):
            if index == scenario.hang:
                users[chat].send("hang-once")
                sent[chat].append("recovered")
                continue
            text = f"{index}*" if shared else str(index)
            users[chat].send(text)
            sent[chat].append(text)
        updates = await fetch_updates(tg, len(scenario.chats))
        async with harness(
            tg, share=4, concurrency=8, keys=keys, heartbeat_timeout=1.0, kill_grace=0.5
        ) as h:
            feeding = asyncio.ensure_future(h.submit(updates))
            for after, slot in scenario.kills:
                await tg.wait_for(lambda a=after: len(tg.calls("sendMessage")) >= a, timeout=20)
                if h.executor.stats()[slot].state != "ready":
                    continue
                pid = h.kill(slot)
                await h.wait_event("died", lambda e, p=pid: e.pid == p)
            await feeding
            await h.drain()
            assert h.errors == []
            bound = sum(h.in_flight_at_deaths)
        repeats = sum(check_replies(tg, users[c], sent[c]) for c in range(6))
        assert repeats <= bound
        # Updates sharing the second key were handled one at a time, in update order,
        # whichever chat (and so whichever worker) they belong to.
        texts = [r.params["text"] for r in tg.calls("sendMessage")]
        shared_texts = [t for t in texts if t.endswith("*")]
        distinct = [t for i, t in enumerate(shared_texts) if i == 0 or shared_texts[i - 1] != t]
        assert distinct == [
            f"{i}*" for i, shared in enumerate(scenario.shared) if shared and i != scenario.hang
        ]


@pytest.mark.slow
@pytest.mark.timeout(240)
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
def test_random_keys_kills_and_hangs_keep_order_lose_nothing_and_bound_repeats(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks = tempfile.mkdtemp(dir=tmp_path)  # one per example: the hang's marker is new
    monkeypatch.setenv("WORKER_BOT_DIR", marks)
    sys.path.insert(0, str(BOTS))
    try:
        asyncio.run(run(scenario))
    finally:
        sys.path.remove(str(BOTS))
