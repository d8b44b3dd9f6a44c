"""Error and timeout hooks: after the item's keys are released, in its slot, under a time limit."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sched_harness import Harness, settle

from tgrunner.scheduler import Scheduler, SchedulerOptions


class Gate:
    """An async hook that records its calls and waits until let go (or is cancelled).

    ``swallow``: how many cancellations it ignores before it lets one end it.
    """

    def __init__(self, *, swallow: int = 0) -> None:
        self.swallow = swallow
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.exited = asyncio.Event()
        self.cancel_seen = asyncio.Event()
        self.calls: list[Any] = []
        self.cancelled = 0

    async def __call__(self, item: Any, exc: BaseException | None = None) -> None:
        self.calls.append(item)
        self.entered.set()
        try:
            while True:
                try:
                    await self.release.wait()
                    return
                except asyncio.CancelledError:
                    self.cancelled += 1
                    self.cancel_seen.set()
                    if self.cancelled > self.swallow:
                        raise
        finally:
            self.exited.set()


async def test_the_key_is_released_and_reported_before_the_error_hook_runs() -> None:
    hook = Gate()
    h = Harness({1: "x", 2: "x"}, failing={1}, overrides={"on_error": hook})
    h.submit(1, 2)
    h.go(1, 2)
    await hook.entered.wait()
    # The next update of the chat does not wait for the hook of the one before.
    await settle()
    assert h.started == [1, 2]
    await h.wait("done", 2)
    assert h.done == [1, 2]
    assert h.sched.lanes == 0
    assert h.sched.running == 1  # the hook is work: it still holds a slot
    hook.release.set()
    assert await h.sched.drain()
    assert hook.calls == [1]


async def test_the_key_is_released_and_reported_before_the_timeout_hook_runs() -> None:
    hook = Gate()
    h = Harness({1: "x", 2: "x"}, handler_timeout=0.01, overrides={"on_timeout": hook})
    h.submit(1, 2)
    await hook.entered.wait()
    assert h.done == [1]
    await settle()
    assert h.started == [1, 2]
    h.go(2)
    await h.wait("done", 2)
    hook.release.set()
    assert await h.sched.drain()


async def test_a_sync_hook_runs_after_the_item_is_reported() -> None:
    events: list[tuple[str, Any]] = []
    h = Harness(
        {1: "x"},
        failing={1},
        overrides={
            "on_done": lambda item: events.append(("done", item)),
            "on_error": lambda item, exc: events.append(("error", item)),
        },
    )
    h.submit(1)
    h.go(1)
    assert await h.sched.drain()
    assert events == [("done", 1), ("error", 1)]


async def test_a_running_hook_holds_its_slot() -> None:
    hook = Gate()
    h = Harness(
        {1: "x", 2: "x"}, failing={1}, concurrency=1, max_pending=5, overrides={"on_error": hook}
    )
    h.submit(1, 2, "free")
    h.go(1, 2, "free")
    await hook.entered.wait()
    await settle()
    assert h.started == [1]  # the only slot is the hook's
    assert (h.sched.running, h.sched.pending, h.sched.lanes) == (1, 2, 1)
    hook.release.set()
    await h.wait("done", 2, "free")
    assert h.started == [1, "free", 2]  # the order they became ready


async def test_a_slow_hook_is_cancelled_at_its_time_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = Gate()

    async def handler(update: dict[str, Any]) -> None:
        raise RuntimeError("broken handler")

    done: list[int] = []
    sched: Scheduler[dict[str, Any]] = Scheduler(
        handler,
        options=SchedulerOptions(hook_timeout=0.02),
        on_error=hook,
        on_done=lambda update: done.append(update["update_id"]),
    )
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        sched.submit({"update_id": 7, "message": {"chat": {"id": 1}}})
        await hook.exited.wait()
        assert await sched.drain()
    assert hook.cancelled == 1
    assert done == [7]
    [record] = [r for r in caplog.records if "time limit" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "on_error hook" in record.getMessage()
    assert "update 7" in record.getMessage()
    assert (sched.running, sched.stuck) == (0, 0)


async def test_a_slow_timeout_hook_is_cancelled_at_its_time_limit() -> None:
    hook = Gate()
    h = Harness({1: "x"}, handler_timeout=0.01, hook_timeout=0.02, overrides={"on_timeout": hook})
    h.submit(1)
    await hook.exited.wait()
    assert await h.sched.drain()
    assert (hook.calls, hook.cancelled, h.done) == ([1], 1, [1])


async def test_a_hook_ignoring_cancellation_is_reported_and_gives_back_its_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = Gate(swallow=2)
    h = Harness(
        {1: "x"},
        failing={1},
        concurrency=1,
        max_pending=5,
        hook_timeout=0.01,
        cancel_grace=0.02,
        overrides={"on_error": hook},
    )
    try:
        with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
            h.submit(1)
            h.go(1)
            await h.wait("stuck", 1)
        assert hook.cancelled == 1
        assert not hook.exited.is_set()
        messages = [r.getMessage() for r in caplog.records]
        assert any("on_error hook on 1 ignored cancellation" in m for m in messages), messages
        # The hook runs on detached; its slot is free for the next update.
        assert (h.sched.running, h.sched.stuck) == (0, 0)
        assert await h.sched.drain(timeout=5)
        h.submit(2)
        h.go(2)
        await h.wait("done", 2)
        # cancel_all cancels the detached hook too, without giving back its slot twice.
        await h.sched.cancel_all()  # does not wait for a hook that already ignored a cancel
        await settle()
        assert hook.cancelled == 2
        hook.release.set()
        await hook.exited.wait()
        await settle()
        assert (h.sched.running, h.sched.pending, h.sched.capacity()) == (0, 0, 5)
        assert h.done == [1, 2]
    finally:
        hook.release.set()  # a failed assertion must not leave the hook running


async def test_a_hook_ending_within_the_grace_keeps_its_slot_till_then() -> None:
    hook = Gate(swallow=2)
    h = Harness(
        {1: "x"},
        failing={1},
        hook_timeout=0.01,
        cancel_grace=30,
        overrides={"on_error": hook},
    )
    h.submit(1)
    h.go(1)
    await hook.cancel_seen.wait()
    assert h.sched.running == 1
    hook.release.set()
    assert await h.sched.drain()
    assert h.stuck == []
