"""The scheduler's lifecycle: drain, cancel_all, lane cleanup, and its options."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sched_harness import Harness, settle

from tgrunner.errors import ConfigError
from tgrunner.scheduler import Scheduler, SchedulerOptions

# -- drain, cancel_all, lanes ------------------------------------------------------------------


async def test_drain() -> None:
    h = Harness({1: ["x"], 2: ["x"]})
    assert await h.sched.drain()  # idle: at once
    h.submit(1, 2)
    assert not await h.sched.drain(timeout=0.01)
    drained = asyncio.ensure_future(h.sched.drain())
    h.go(1)
    await h.wait("done", 1)
    await settle()
    assert not drained.done()
    h.go(2)
    assert await drained
    assert (h.sched.running, h.sched.pending, h.sched.lanes) == (0, 0, 0)


async def test_cancel_all_cancels_running_and_drops_queued_without_reporting() -> None:
    h = Harness({1: ["x"], 2: ["x"], 3: ["y"], 4: ["z"]}, concurrency=2, max_pending=10)
    h.submit(1, 2, 3, 4, "free")
    await h.wait("started", 1, 3)
    await h.sched.cancel_all()
    assert sorted(h.cancelled) == [1, 3]
    assert h.started == [1, 3]
    assert h.done == []
    assert h.errors == []
    assert h.timeouts == []
    assert (h.sched.running, h.sched.pending, h.sched.lanes) == (0, 0, 0)
    assert h.sched.capacity() == 10
    # Still usable afterwards.
    h.submit(5)
    h.go(5)
    await h.wait("done", 5)
    assert h.done == [5]


async def test_cancel_all_cancels_hooks() -> None:
    hook_gate = asyncio.Event()
    entered = asyncio.Event()
    hook_cancelled: list[bool] = []

    async def on_error(item: Any, exc: BaseException) -> None:
        entered.set()
        try:
            await hook_gate.wait()
        except asyncio.CancelledError:
            hook_cancelled.append(True)
            raise

    h = Harness({1: ["x"]}, failing={1}, overrides={"on_error": on_error})
    h.submit(1)
    h.go(1)
    await entered.wait()
    await h.sched.cancel_all()
    assert hook_cancelled == [True]
    assert h.done == [1]  # reported before its hook ran
    assert (h.sched.running, h.sched.lanes) == (0, 0)


async def test_cancel_all_leaves_a_handler_that_ignores_it_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness({1: ["x"]}, swallow={1}, cancel_grace=0.02)
    h.submit(1)
    await h.wait("started", 1)
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        await h.sched.cancel_all()
    assert any("left behind" in r.getMessage() for r in caplog.records)
    assert h.sched.running == 1  # it still runs, and still holds its slot
    assert h.sched.lanes == 0
    h.free(1)
    assert await h.sched.drain()
    assert h.done == []


async def test_lanes_are_deleted_when_they_empty() -> None:
    keys = {i: [f"a{i % 7}", f"b{i % 3}"] for i in range(40)}
    h = Harness(keys, concurrency=5, max_pending=100)
    h.submit(*range(40))
    assert h.sched.lanes == 10
    h.go(*range(40))
    assert await h.sched.drain()
    assert h.sched.lanes == 0
    assert h.sched.capacity() == 100


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"max_pending": 0}, "max_pending"),
        ({"max_pending_per_key": 0}, "max_pending_per_key"),
        ({"concurrency": 100, "max_pending": 50}, "max_pending"),
        ({"handler_timeout": 0}, "handler_timeout"),
        ({"handler_timeout": -1.0}, "handler_timeout"),
        ({"handler_timeout": float("nan")}, "handler_timeout"),
        ({"handler_timeout": "10"}, "handler_timeout"),
        ({"cancel_grace": 0}, "cancel_grace"),
        ({"cancel_grace": float("inf")}, "cancel_grace"),
        ({"hook_timeout": 0}, "hook_timeout"),
        ({"hook_timeout": -2}, "hook_timeout"),
        ({"hook_timeout": float("inf")}, "hook_timeout"),
        ({"hook_timeout": None}, "hook_timeout"),
        ({"hook_timeout": "10"}, "hook_timeout"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SchedulerOptions(**options)


def test_defaults() -> None:
    opts = SchedulerOptions()
    assert (opts.concurrency, opts.max_pending_per_key, opts.max_pending) == (500, 1000, 10_000)
    assert (opts.handler_timeout, opts.cancel_grace, opts.hook_timeout) == (None, 5.0, 10.0)


def test_options_must_be_scheduler_options() -> None:
    async def handler(item: Any) -> None:
        return None

    with pytest.raises(ConfigError, match="SchedulerOptions"):
        Scheduler(handler, options={"concurrency": 5})  # type: ignore[arg-type]
