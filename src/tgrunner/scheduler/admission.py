"""Admission: where an update goes once it is in the intake — the scheduler, parked, or shed.

The scheduler's ``capacity()`` is its global room: fetching waits for it (backpressure). An
update whose key lane is full must not make everything wait, so:

- with the journal, it is **parked** (:mod:`.overflow`): its id and keys stay in memory, the
  update itself waits in the journal and is read back when its lane has room. Updates that
  share a key with a parked one park behind it, so per-key order holds;
- with strict offsets nothing can be read back, so it is **shed**: confirmed without being
  handled, with a warning (at most one each ``SHED_LOG_EVERY`` seconds) and a count.

At most ``max_parked`` updates are parked; past that, :meth:`Admission.wait_for_room` holds
fetching until some leave.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from tgrunner.scheduler.lanes import Scheduler
from tgrunner.scheduler.overflow import Overflow

__all__ = ["SHED_LOG_EVERY", "Admission"]

log = logging.getLogger("tgrunner.runtime.runner")

SHED_LOG_EVERY = 10.0
"""Seconds between two warnings about shed updates."""

Update = dict[str, Any]


class Admission:
    """Admit updates into ``scheduler``, parking or shedding those whose lane is full.

    - ``read(update_id)``: the parked update back from the journal (None if it is gone).
    - ``release(update_id)``: a shed update needs nothing more (confirm it).
    - ``durable()``: whether the intake can keep parked updates (the journal) or not.
    - ``max_parked``: most parked updates before fetching waits.

    ``on_shed(update)``, default None: called for each shed update (metrics).
    """

    on_shed: Callable[[Update], None] | None = None

    def __init__(
        self,
        scheduler: Scheduler[Update],
        *,
        read: Callable[[int], Update | None],
        release: Callable[[int], None],
        durable: Callable[[], bool],
        max_parked: int,
    ) -> None:
        self.scheduler = scheduler
        self.overflow = Overflow()
        self.parked = 0  # updates parked since start
        self.shed = 0  # updates shed since start
        self._read = read
        self._release = release
        self._durable = durable
        self._max_parked = max_parked
        self._pump_due = False
        self._shed_logged = 0.0
        self._room = asyncio.Event()

    def admit(self, update: Update, keys: tuple[Hashable, ...]) -> None:
        """Submit, park or shed ``update`` (the scheduler must have global room)."""
        sched = self.scheduler
        overflow = self.overflow
        # Nothing parked (the usual case): no lane of the overflow to look at.
        if (not overflow.count or not overflow.blocks(keys)) and sched.lane_room(keys) > 0:
            sched.submit(update, keys=keys)
        elif self._durable():
            self.parked += 1
            self.overflow.park(update["update_id"], keys)
        else:
            self._shed(update, keys)

    def finished(self) -> None:
        """An update finished: parked ones may move up (on the next loop iteration, once the
        scheduler has released its keys)."""
        if self.overflow.count and not self._pump_due:
            self._pump_due = True
            asyncio.get_running_loop().call_soon(self.pump)

    def pump(self) -> None:
        """Move parked updates whose lanes have room back into the scheduler."""
        self._pump_due = False
        sched = self.scheduler
        overflow = self.overflow
        for entry in overflow.free():
            if sched.capacity() < 1:
                break
            if sched.lane_room(entry.keys) < 1:
                continue
            overflow.release(entry)
            update = self._read(entry.update_id)
            if update is not None:
                sched.submit(update, keys=entry.keys)
        self._room.set()

    async def wait_for_room(self) -> None:
        """Pump, and wait while ``max_parked`` updates are parked."""
        if not self.overflow.count:
            return
        self.pump()
        while self.overflow.count >= self._max_parked:
            self._room.clear()
            await self._room.wait()

    def _shed(self, update: Update, keys: tuple[Hashable, ...]) -> None:
        self.shed += 1
        if self.on_shed is not None:
            self.on_shed(update)
        now = time.monotonic()
        if now - self._shed_logged >= SHED_LOG_EVERY:
            self._shed_logged = now
            log.warning(
                "dropping update %d: key %r already has %d updates queued "
                "(--max-pending-per-key) and strict offsets (--no-journal) keep no overflow; "
                "%d dropped so far. Run with the journal to keep them",
                update["update_id"],
                keys[0] if keys else None,
                self.scheduler.options.max_pending_per_key,
                self.shed,
            )
        self._release(update["update_id"])
