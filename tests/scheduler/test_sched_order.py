"""The scheduler's order contract: per-key FIFO lanes, concurrency across keys."""

from __future__ import annotations

import asyncio
from typing import Any

from sched_harness import Harness, settle

from tgrunner.scheduler import Scheduler


async def test_same_key_runs_one_at_a_time_in_submit_order() -> None:
    h = Harness({1: ["x"], 2: ["x"], 3: ["x"]})
    h.submit(1, 2, 3)
    await h.wait("started", 1)
    await settle()
    assert h.started == [1]
    h.go(3, 2)  # let go out of order: the lane still decides
    await settle()
    assert h.started == [1]
    h.go(1)
    await h.wait("done", 1, 2, 3)
    assert h.started == [1, 2, 3]
    assert h.done == [1, 2, 3]


async def test_multi_key_item_waits_for_every_key_and_is_waited_for() -> None:
    # A on {x}, B on {x, y}, C on {y}: C waits for B although y is free when C is submitted.
    h = Harness({"A": ["x"], "B": ["x", "y"], "C": ["y"]})
    h.submit("A", "B", "C")
    await h.wait("started", "A")
    await settle()
    assert h.started == ["A"]
    h.go("C")
    await settle()
    assert h.started == ["A"]
    h.go("A")
    await h.wait("started", "B")
    await settle()
    assert h.started == ["A", "B"]
    h.go("B")
    await h.wait("done", "C")
    assert h.started == ["A", "B", "C"]
    assert h.sched.lanes == 0


async def test_items_sharing_no_key_run_concurrently() -> None:
    h = Harness({1: ["x"], 2: ["y"], 3: ["x", "z"]})
    h.submit(1, 2, 3)
    await h.wait("started", 1, 2)
    await settle()
    assert sorted(h.started) == [1, 2]
    assert h.sched.running == 2
    assert h.sched.pending == 1
    h.go(1, 2, 3)
    await h.wait("done", 1, 2, 3)


async def test_items_without_keys_run_freely() -> None:
    h = Harness({1: ["x"], 2: ["x"]})
    h.submit(1, 2, "free-a", "free-b")
    await h.wait("started", 1, "free-a", "free-b")
    assert 2 not in h.started
    h.go("free-a", "free-b")
    await h.wait("done", "free-a", "free-b")
    assert h.sched.lanes == 1  # x still held by 1, waited for by 2
    h.go(1, 2)
    await h.wait("done", 1, 2)
    assert h.sched.lanes == 0


async def test_a_key_listed_twice_does_not_deadlock() -> None:
    h = Harness({1: ["x", "x"], 2: ("x",)})
    h.submit(1, 2)
    h.go(1, 2)
    await h.wait("done", 1, 2)
    assert h.started == [1, 2]


async def test_default_key_is_the_chat() -> None:
    started: list[int] = []
    gate = asyncio.Event()

    async def handler(update: dict[str, Any]) -> None:
        started.append(update["update_id"])
        await gate.wait()

    sched: Scheduler[dict[str, Any]] = Scheduler(handler)
    for uid, chat in [(1, 5), (2, 5), (3, 6)]:
        sched.submit({"update_id": uid, "message": {"message_id": uid, "chat": {"id": chat}}})
    await settle()
    assert started == [1, 3]
    gate.set()
    assert await sched.drain()
    assert started == [1, 3, 2]
