"""The scheduler's limits: the concurrency limit, the pending bounds and backpressure."""

from __future__ import annotations

import asyncio

import pytest
from sched_harness import Harness, settle

from tgrunner.scheduler import SchedulerFull

# -- the global limit -------------------------------------------------------------------------


async def test_never_more_than_concurrency_run() -> None:
    h = Harness(concurrency=2, max_pending=10)
    h.submit("a", "b", "c", "d")
    await h.wait("started", "a", "b")
    await settle()
    assert h.started == ["a", "b"]
    assert (h.sched.running, h.sched.pending) == (2, 2)
    h.go("b")
    await h.wait("started", "c")
    await settle()
    assert h.started == ["a", "b", "c"]
    h.go("a", "c", "d")
    await h.wait("done", "d")
    assert h.sched.running == 0


async def test_ready_items_start_in_the_order_they_became_ready() -> None:
    # 1 holds x and the only slot; 2 waits for x; 3 is ready (y is free) before 2 is.
    h = Harness({1: ["x"], 2: ["x"], 3: ["y"]}, concurrency=1, max_pending=10)
    h.submit(1, 2, 3)
    await h.wait("started", 1)
    h.go(1)
    await h.wait("started", 3)
    await settle()
    assert h.started == [1, 3]
    h.go(3, 2)
    await h.wait("done", 2)
    assert h.started == [1, 3, 2]


# -- bounds and backpressure ------------------------------------------------------------------


async def test_capacity_counts_queued_and_running_items() -> None:
    h = Harness({i: ["x"] for i in range(3)}, concurrency=2, max_pending=5)
    assert h.sched.capacity() == 5
    h.submit(0, 1, 2, "free")
    assert h.sched.capacity() == 1
    h.submit("free2")
    assert h.sched.capacity() == 0
    with pytest.raises(SchedulerFull, match="wait_capacity"):
        h.sched.submit("one too many")
    h.go(0, 1, 2, "free", "free2")
    assert await h.sched.drain()
    assert h.sched.capacity() == 5


async def test_per_key_limit_holds_back_intake() -> None:
    h = Harness({i: ["hot"] for i in range(3)}, max_pending_per_key=2)
    h.submit(0, 1)
    assert h.sched.capacity() == 0  # whatever the next item's key: the source must slow down
    with pytest.raises(SchedulerFull):
        h.sched.submit(2)
    waiter = asyncio.ensure_future(h.sched.wait_capacity(1))
    await settle()
    assert not waiter.done()
    h.go(0)
    await waiter
    assert h.sched.capacity() == 1
    h.submit(2)
    h.go(1, 2)
    assert await h.sched.drain()


async def test_wait_capacity_waits_for_n() -> None:
    h = Harness(concurrency=3, max_pending=3)
    h.submit("a", "b", "c")
    waiter = asyncio.ensure_future(h.sched.wait_capacity(2))
    h.go("a")
    await h.wait("done", "a")
    await settle()
    assert not waiter.done()
    h.go("b")
    await waiter
    assert h.sched.capacity() >= 2
    h.go("c")
    assert await h.sched.drain()


async def test_wait_capacity_returns_at_once_with_room_and_refuses_the_impossible() -> None:
    h = Harness(max_pending=10, max_pending_per_key=4, concurrency=2)
    await h.sched.wait_capacity(4)
    with pytest.raises(ValueError, match="never"):
        await h.sched.wait_capacity(5)
