"""The scheduler's limits: the concurrency limit, the pending bounds and backpressure."""

from __future__ import annotations

import asyncio

import pytest
from sched_harness import Harness, settle

import tgrunner.errors
import tgrunner.scheduler
from tgrunner.scheduler import LaneFull, SchedulerFull

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


async def test_a_full_lane_raises_lane_full_and_holds_back_no_other_key() -> None:
    h = Harness(
        {0: "hot", 1: "hot", 2: "hot", 3: "hot"},
        concurrency=4,
        max_pending=10,
        max_pending_per_key=2,
    )
    h.submit(0, 1)
    # One chat at its limit no longer stops the intake: capacity() is the global room.
    assert h.sched.capacity() == 8
    assert h.sched.lane_room(("hot",)) == 0
    with pytest.raises(LaneFull, match="lane_room") as caught:
        h.sched.submit(2)
    assert isinstance(caught.value, SchedulerFull)
    assert caught.value.key == "hot"
    assert "max_pending_per_key" in str(caught.value)
    assert (h.sched.pending, h.sched.capacity()) == (1, 8)  # the refused item left no trace
    h.submit("other", "free")
    await h.wait("started", "other", "free")
    h.go(0)
    await h.wait("done", 0)
    assert h.sched.lane_room(("hot",)) == 1
    h.submit(2)
    assert h.sched.lane_room(("hot",)) == 0
    h.go(1, 2, "other", "free")
    assert await h.sched.drain()
    assert h.sched.lane_room(("hot",)) == 2


async def test_lane_room_is_the_least_room_of_the_keys_and_the_global_room() -> None:
    h = Harness(
        {0: ("a", "b"), 1: "a", 2: "a", 3: "c"}, concurrency=2, max_pending=8, max_pending_per_key=4
    )
    assert h.sched.lane_room(()) == 8
    assert h.sched.lane_room(("new",)) == 4
    h.submit(0, 1, 2, 3)
    assert h.sched.lane_room(("a",)) == 1
    assert h.sched.lane_room(("b",)) == 3
    assert h.sched.lane_room(("b", "a")) == h.sched.lane_room(("a", "b")) == 1
    assert h.sched.lane_room(("b", "new")) == 3
    assert h.sched.lane_room(()) == h.sched.capacity() == 4
    h.submit("x", "y")
    assert h.sched.lane_room(("b",)) == h.sched.lane_room(("new",)) == 2  # the global room
    h.submit("z", "w")
    assert h.sched.lane_room(()) == h.sched.lane_room(("new",)) == h.sched.capacity() == 0
    with pytest.raises(SchedulerFull, match="wait_capacity") as caught:
        h.sched.submit("v")
    assert not isinstance(caught.value, LaneFull)
    h.go(0, 1, 2, 3, "x", "y", "z", "w")
    assert await h.sched.drain()


async def test_a_full_scheduler_is_reported_before_a_full_lane() -> None:
    h = Harness({0: "hot", 1: "hot", 2: "hot"}, concurrency=2, max_pending=2, max_pending_per_key=2)
    h.submit(0, 1)
    with pytest.raises(SchedulerFull, match="max_pending") as caught:
        h.sched.submit(2)
    assert not isinstance(caught.value, LaneFull)
    h.go(0, 1)
    assert await h.sched.drain()


async def test_wait_capacity_ignores_a_full_lane() -> None:
    h = Harness({0: "hot", 1: "hot"}, concurrency=4, max_pending=10, max_pending_per_key=2)
    h.submit(0, 1)
    await asyncio.wait_for(h.sched.wait_capacity(8), timeout=5)
    h.go(0, 1)
    assert await h.sched.drain()


def test_lane_full_is_exported_from_errors_and_scheduler() -> None:
    assert tgrunner.errors.LaneFull is tgrunner.scheduler.LaneFull is LaneFull
    assert "LaneFull" in tgrunner.errors.__all__
    assert "LaneFull" in tgrunner.scheduler.__all__
    assert "LaneFull" in (tgrunner.errors.__doc__ or "")


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
    await h.sched.wait_capacity(10)  # the per-key limit does not bound the global room
    with pytest.raises(ValueError, match="never"):
        await h.sched.wait_capacity(11)
