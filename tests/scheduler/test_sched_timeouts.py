"""The scheduler's time limits: cancellation, stuck handlers and their slots."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sched_harness import Harness, settle

from tgrunner.scheduler import Scheduler, SchedulerOptions

# -- time limits ------------------------------------------------------------------------------


async def test_timeout_cancels_calls_hook_and_releases_the_key() -> None:
    h = Harness({1: ["x"], 2: ["x"]}, handler_timeout=0.02)
    h.submit(1, 2)
    await h.wait("started", 2)  # 1 hangs until its time limit cancels it
    assert h.cancelled == [1]
    assert h.timeouts == [1]
    assert h.errors == []
    h.go(2)
    await h.wait("done", 2)
    assert h.done == [1, 2]
    assert h.sched.lanes == 0


async def test_time_limit_starts_when_the_handler_starts() -> None:
    loop = asyncio.get_running_loop()
    began: dict[int, float] = {}
    cancelled_at: dict[int, float] = {}
    limit = 0.05

    async def handler(item: int) -> None:
        began[item] = loop.time()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled_at[item] = loop.time()
            raise

    sched: Scheduler[int] = Scheduler(
        handler,
        options=SchedulerOptions(handler_timeout=limit),
        key=lambda _: ("same",),
        on_timeout=lambda _: None,
    )
    sched.submit(1)
    sched.submit(2)  # queued for a whole time limit before it starts
    assert await sched.drain()
    assert began[2] >= cancelled_at[1]
    # A limit counted from submission would have cancelled 2 as soon as it started.
    assert cancelled_at[2] - began[2] >= limit * 0.9


async def test_handler_swallowing_cancellation_is_reported_and_releases_its_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness({1: ["x"], 2: ["x"]}, swallow={1}, handler_timeout=0.01, cancel_grace=0.05)
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        h.submit(1, 2)
        await h.wait("started", 2)  # only after the grace: 1 never stopped
    assert h.cancelled == [1]
    assert h.stuck == [1]
    assert h.timeouts == [1]
    assert h.done == [1]
    assert any("handler on 1 ignored cancellation" in r.getMessage() for r in caplog.records)
    # The detached handler still holds a slot: the global limit stays a true bound.
    assert h.sched.running == 2
    assert h.sched.stuck == 1
    h.go(2)
    await h.wait("done", 2)
    assert h.sched.lanes == 0
    assert h.sched.running == 1
    assert not await h.sched.drain(timeout=0.01)
    h.free(1)
    assert await h.sched.drain()
    assert (h.sched.running, h.sched.stuck, h.done) == (0, 0, [1, 2])


async def test_stuck_warning_names_the_update(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def handler(update: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()

    reported = asyncio.Event()
    sched: Scheduler[dict[str, Any]] = Scheduler(
        handler,
        options=SchedulerOptions(handler_timeout=0.01, cancel_grace=0.02),
        on_stuck=lambda _: reported.set(),
    )
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        sched.submit({"update_id": 42, "message": {"chat": {"id": 1}}})
        await reported.wait()
    assert any("update 42" in r.getMessage() for r in caplog.records)
    release.set()
    assert await sched.drain()


async def test_stuck_handlers_keep_their_slot() -> None:
    h = Harness(
        swallow={"z"}, handler_timeout=0.01, cancel_grace=0.02, concurrency=1, max_pending=5
    )
    h.submit("z", "next")
    await h.wait("done", "z")  # reported stuck, keys released...
    await settle()
    assert h.started == ["z"]  # ...but "next" needs the one slot the zombie holds
    h.free("z")
    await h.wait("started", "next")
    h.go("next")
    assert await h.sched.drain()


async def test_handler_finishing_after_its_cancel_within_grace_is_a_timeout() -> None:
    h = Harness({1: ["x"]}, swallow={1}, handler_timeout=0.01, cancel_grace=30)
    h.submit(1)
    await h.wait("cancelled", 1)
    h.free(1)
    await h.wait("done", 1)
    assert h.timeouts == [1]
    assert h.stuck == []
    assert h.sched.running == 0
