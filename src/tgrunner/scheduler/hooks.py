"""Awaited ``on_error`` and ``on_timeout`` hooks, each under a time limit and in one slot.

The scheduler starts a hook once the item's keys are released, so a hook never holds back
the next update of its chat. The hook still holds its slot while it runs, since it is work.
Its life, told by :class:`Hooks`:

- It ends by itself: the failure it raises is logged and its slot is given back.
- It runs past ``hook_timeout``: a warning names the hook and the item, and its task is
  cancelled. Its slot is given back once the task ends.
- It ignores that cancellation for ``cancel_grace`` more seconds: it is reported (a warning
  and ``on_stuck``) and gives back its slot, while its task runs on detached. The hook has
  no key and its item is already reported, so nothing waits for it, and a slot that a
  recurring bug would never give back is worse than a task left running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.scheduler.describe import describe

__all__ = ["Hooks"]

log = logging.getLogger(__name__)

# A run holds its slot in every state but _DETACHED. A _DROPPED run (cancel_all) ends silently.
_RUNNING, _CANCELLING, _DETACHED, _DROPPED = range(4)


class _Run:
    __slots__ = ("item", "name", "release", "state", "timer")

    def __init__(self, item: Any, name: str, release: Callable[[], None]) -> None:
        self.item = item
        self.name = name
        self.release = release  # gives back the slot; called exactly once
        self.state = _RUNNING
        self.timer: asyncio.TimerHandle | None = None


class Hooks:
    """The hooks being awaited now.

    - ``timeout``: seconds a hook may run (``hook_timeout``).
    - ``grace``: seconds a cancelled hook may take to end (``cancel_grace``).
    - ``report_stuck(item)``: called when a hook ignored its cancellation for ``grace``.
    """

    def __init__(self, timeout: float, grace: float, report_stuck: Callable[[Any], None]) -> None:
        self._timeout = timeout
        self._grace = grace
        self._report_stuck = report_stuck
        self._runs: dict[asyncio.Future[Any], _Run] = {}

    @property
    def detached(self) -> int:
        """Hooks that ignored cancellation and run on without a slot."""
        return sum(1 for run in self._runs.values() if run.state is _DETACHED)

    def __len__(self) -> int:
        return len(self._runs)

    def start(
        self, item: Any, name: str, result: Awaitable[Any], release: Callable[[], None]
    ) -> None:
        """Await ``result``, what hook ``name`` returned for ``item``; ``release()`` at the end."""
        task = asyncio.ensure_future(result)
        run = _Run(item, name, release)
        self._runs[task] = run
        run.timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, task, run)
        task.add_done_callback(self._ended)

    def cancel_all(self) -> list[asyncio.Future[Any]]:
        """Cancel every hook without logging it; return the tasks that still hold a slot."""
        holding: list[asyncio.Future[Any]] = []
        for task, run in self._runs.items():
            if run.timer is not None:
                run.timer.cancel()
                run.timer = None
            if run.state is not _DETACHED:
                run.state = _DROPPED
                holding.append(task)
            task.cancel("tgrunner scheduler: cancel_all")
        return holding

    def _ended(self, task: asyncio.Future[Any]) -> None:
        run = self._runs.pop(task)
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        exc = None if task.cancelled() else task.exception()  # retrieved, so never logged twice
        state = run.state
        if state is _RUNNING:
            if exc is not None:
                log.error("the %s hook failed on %s", run.name, describe(run.item), exc_info=exc)
            elif task.cancelled():
                log.warning("the %s hook on %s was cancelled", run.name, describe(run.item))
        elif state is _CANCELLING:
            if exc is not None:
                log.warning(
                    "the %s hook on %s raised while being cancelled for its time limit",
                    run.name,
                    describe(run.item),
                    exc_info=exc,
                )
        elif state is _DETACHED:
            log.info(
                "the detached %s hook on %s has ended", run.name, describe(run.item), exc_info=exc
            )
            return  # its slot was given back when it was detached
        run.release()

    def _expire(self, task: asyncio.Future[Any], run: _Run) -> None:
        run.timer = None
        if run.state is not _RUNNING or task.done():
            return  # it ended in this very loop iteration
        run.state = _CANCELLING
        log.warning(
            "the %s hook on %s ran past its time limit of %g s (hook_timeout) and is cancelled",
            run.name,
            describe(run.item),
            self._timeout,
        )
        task.cancel(f"tgrunner scheduler: the {run.name} hook's time limit of {self._timeout} s")
        run.timer = asyncio.get_running_loop().call_later(self._grace, self._give_up, task, run)

    def _give_up(self, task: asyncio.Future[Any], run: _Run) -> None:
        run.timer = None
        if run.state is not _CANCELLING or task.done():
            return
        run.state = _DETACHED
        log.warning(
            "the %s hook on %s ignored cancellation for %g s after its time limit of %g s; it "
            "runs on detached and gives back its slot (%d detached hooks)",
            run.name,
            describe(run.item),
            self._grace,
            self._timeout,
            self.detached,
        )
        self._report_stuck(run.item)
        run.release()
