"""The coroutines that wait on a :class:`~tgrunner.scheduler.lanes.Scheduler`: for room
(``wait_capacity``) or for it to be idle (``drain``). Event-driven: the scheduler calls
:meth:`Waiters.wake` when an item gives back its slot, and nobody polls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Waiters"]


class Waiters:
    """Futures of the waiting coroutines; ``capacity`` and ``idle`` are empty when none wait."""

    def __init__(self) -> None:
        self.capacity: list[tuple[int, asyncio.Future[None]]] = []
        self.idle: list[asyncio.Future[None]] = []

    async def room(self, n: int, capacity: Callable[[], int]) -> None:
        """Return once ``capacity() >= n``."""
        while capacity() < n:
            waiter = (n, asyncio.get_running_loop().create_future())
            self.capacity.append(waiter)
            try:
                await waiter[1]
            finally:
                self.capacity.remove(waiter)

    async def until_idle(self, timeout: float | None) -> bool:
        """Return True once woken idle, False if ``timeout`` seconds (None: never) ran out."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.idle.append(fut)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return False
        finally:
            self.idle.remove(fut)
        return True

    def wake(self, capacity: int, idle: bool) -> None:
        """Wake the waiters for room that ``capacity`` satisfies, and all the idle ones if
        the scheduler is ``idle``."""
        for n, fut in self.capacity:
            if capacity >= n and not fut.done():
                fut.set_result(None)
        if idle:
            for fut in self.idle:
                if not fut.done():
                    fut.set_result(None)
