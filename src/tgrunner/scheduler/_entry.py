"""One submitted item's bookkeeping in the :class:`~tgrunner.scheduler.lanes.Scheduler`, and the
states of its life (private to the scheduler)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Hashable
from typing import Any

from tgrunner.scheduler.describe import short_repr

__all__ = [
    "CANCELLING",
    "DONE",
    "DROPPED",
    "QUEUED",
    "RUNNING",
    "STUCK",
    "Entry",
    "awaitable_task",
    "fail_as_task",
]

# The life of an entry. RUNNING and CANCELLING handlers are reported when their task ends;
# in every other state the task's end only gives back the slot. A STUCK handler is reported
# at once and its task runs on. DONE: reported, keys released (a hook may still run).
QUEUED, RUNNING, CANCELLING, STUCK, DONE, DROPPED = range(6)


async def fail_as_task(exc: BaseException) -> None:
    """Raise ``exc``: turns a failure before the handler could start into an ordinary failed
    task, so it takes the same path (on_error, on_done, slot) as a handler that raised."""
    raise exc


def awaitable_task(loop: asyncio.AbstractEventLoop, aw: Any) -> asyncio.Future[Any]:
    """A task for what a handler returned that is not a coroutine: an awaitable's future, or
    a failed task that says the handler should be an async function."""
    if inspect.isawaitable(aw):
        return asyncio.ensure_future(aw, loop=loop)
    return loop.create_task(
        fail_as_task(
            TypeError(
                f"the handler returned {short_repr(aw)}, not an awaitable; "
                "make it an async function"
            )
        )
    )


class Entry:
    """One submitted item and its bookkeeping."""

    __slots__ = ("blocked", "error", "item", "keys", "refs", "started", "state", "submitted",
                 "task", "timer")  # fmt: skip

    def __init__(self, item: Any, keys: tuple[Hashable, ...]) -> None:
        self.item = item
        self.keys = keys
        self.blocked = 0  # lanes where this entry is not at the head
        self.state = QUEUED
        self.error: BaseException | None = None  # set when the key function failed
        self.task: asyncio.Future[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        # What holds the slot: the handler's task, and a hook's task while one runs.
        self.refs = 0
        # perf_counter() stamps, taken only while the scheduler has an observer: when the item
        # was queued (0.0 if it never had to wait) and when it started.
        self.submitted = 0.0
        self.started = 0.0
