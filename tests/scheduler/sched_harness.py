"""The scheduler tests' harness: handlers that wait on per-item gates, every hook recorded."""

from __future__ import annotations

import asyncio
from typing import Any

from tgrunner.scheduler import Scheduler, SchedulerOptions


class Boom(Exception):
    """The failure a test handler raises on purpose."""


async def settle() -> None:
    # Let callbacks and freshly started tasks run; used only before asserting that
    # something did NOT happen.
    for _ in range(10):
        await asyncio.sleep(0)


class Harness:
    """A scheduler whose handlers wait on per-item gates, with every hook recorded.

    - ``keys``: item -> what the key function returns for it (missing items: no key).
    - ``failing``: items whose handler raises :class:`Boom` once let go.
    - ``swallow``: items whose handler swallows cancellation and waits for ``free(item)``.
    - ``hooks``: False to leave the error, timeout and stuck hooks unset.
    - ``overrides``: other keyword arguments for :class:`Scheduler` (a hook, the key).
    """

    def __init__(
        self,
        keys: dict[Any, Any] | None = None,
        *,
        failing: set[Any] | frozenset[Any] = frozenset(),
        swallow: set[Any] | frozenset[Any] = frozenset(),
        hooks: bool = True,
        overrides: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.keys = keys or {}
        self.failing = failing
        self.swallow = swallow
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.cancelled: list[Any] = []
        self.done: list[Any] = []
        self.errors: list[tuple[Any, BaseException]] = []
        self.timeouts: list[Any] = []
        self.stuck: list[Any] = []
        self._events: dict[tuple[str, Any], asyncio.Event] = {}
        kwargs: dict[str, Any] = {
            "key": lambda item: self.keys.get(item, ()),
            "on_done": self._done,
            "on_error": self._error if hooks else None,
            "on_timeout": self._timeout if hooks else None,
            "on_stuck": self._stuck if hooks else None,
            **(overrides or {}),
        }
        self.sched: Scheduler[Any] = Scheduler(
            self.handle, options=SchedulerOptions(**options), **kwargs
        )

    def event(self, what: str, item: Any) -> asyncio.Event:
        return self._events.setdefault((what, item), asyncio.Event())

    async def wait(self, what: str, *items: Any) -> None:
        for item in items:
            await self.event(what, item).wait()

    def go(self, *items: Any) -> None:
        for item in items:
            self.event("go", item).set()

    def free(self, *items: Any) -> None:
        for item in items:
            self.event("free", item).set()

    def submit(self, *items: Any) -> None:
        for item in items:
            self.sched.submit(item)

    async def handle(self, item: Any) -> None:
        self.started.append(item)
        self.event("started", item).set()
        try:
            await self.event("go", item).wait()
        except asyncio.CancelledError:
            self.cancelled.append(item)
            self.event("cancelled", item).set()
            if item in self.swallow:
                await self.event("free", item).wait()
                return
            raise
        if item in self.failing:
            raise Boom(item)
        self.finished.append(item)

    def _done(self, item: Any) -> None:
        self.done.append(item)
        self.event("done", item).set()

    def _error(self, item: Any, exc: BaseException) -> None:
        self.errors.append((item, exc))

    def _timeout(self, item: Any) -> None:
        self.timeouts.append(item)

    def _stuck(self, item: Any) -> None:
        self.stuck.append(item)
        self.event("stuck", item).set()
