"""The supervisor's bookkeeping: one job per update in flight, one slot per worker process.

A **job** is an update the scheduler handed to the executor and that is not finished: its
JSON bytes (kept, to send it again after a death) and how many deaths of its worker it was in
flight for. It is itself the future the scheduler waits on.

A **slot** is one place in the pool (``0 .. workers - 1``); sticky routing picks the slot, and
the slot's current process handles what it is sent. A slot outlives its processes: when one
dies, the slot keeps its jobs and hands them to the replacement. Jobs of a slot are in one of
three places:

- ``queue``: not sent yet (the slot has no ready process, or suspects go first), including
  jobs sent again after one death of their worker;
- ``suspects``: in flight at two deaths of their worker, sent again one at a time, each alone
  on its worker, so that the next death blames exactly the update that caused it;
- ``process.sent``: sent to a process and not finished.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tgrunner.executors.processes.process import State, WorkerProcess
from tgrunner.executors.processes.wire import CANCEL

__all__ = ["Job", "Slot", "WorkerEvent", "WorkerStats"]


class Job(asyncio.Future[None]):
    """One update in flight through the executor, and the awaitable ``execute()`` returns.

    It is a future (no task or coroutine wraps it): it ends when the update is finished.
    Cancelling it (the scheduler's time limit) ends a job that was not sent at once; one that
    runs in a worker is sent ``CANCEL`` there, and the job ends, cancelled, when the worker
    says the handler ended (:meth:`succeed`), or with the handler's error if it raised first.
    ``on_unsent(job)`` takes a cancelled job that was not sent out of its slot.
    """

    __slots__ = (
        "_cancel_msg",
        "cancelling",
        "data",
        "deaths",
        "finished",
        "on_unsent",
        "token",
        "update_id",
        "worker",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        token: int,
        update_id: int | None,
        data: bytes,
        on_unsent: Callable[[Job], None],
    ) -> None:
        super().__init__(loop=loop)
        self.token = token
        self.update_id = update_id
        self.data = data
        self.on_unsent = on_unsent
        self.deaths = 0  # deaths of its worker while it was in flight there
        self.worker: WorkerProcess | None = None  # where it was sent (None: not sent)
        self.cancelling = False  # CANCEL sent; waiting for the worker's DONE
        self.finished = False
        self._cancel_msg: Any = None

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the update: at once if it was not sent, else once its handler has ended."""
        if self.done():
            return False
        worker = self.worker
        if self.finished or worker is None:  # not sent: it never runs
            if not self.finished:
                self.on_unsent(self)
            return super().cancel(msg)
        if not self.cancelling:  # its handler runs in the worker: cancel it there
            self.cancelling = True
            self._cancel_msg = msg
            worker.send(CANCEL, self.token)
        return True

    def succeed(self) -> None:
        """The handler ended without an error: the job ends (cancelled, if that was asked)."""
        if self.done():
            return
        if self.cancelling:
            super().cancel(self._cancel_msg)
        else:
            self.set_result(None)

    def drop(self) -> None:
        """End the job, cancelled, without telling any worker (at close)."""
        if not self.done():
            super().cancel()


class Slot:
    """One place in the pool and the jobs routed to it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.current: WorkerProcess | None = None  # the process it sends to
        self.next: WorkerProcess | None = None  # a replacement starting (replace_workers)
        self.queue: deque[Job] = deque()
        self.suspects: deque[Job] = deque()
        self.in_flight = 0  # jobs routed here and not finished
        self.done = 0
        self.restarts = 0  # processes started after a death or a hang
        self.replaced = 0  # processes swapped by replace_workers
        self.start_failures = 0  # in a row, for the current process
        self.next_failures = 0  # in a row, for the replacement being started
        self.quick_deaths = 0  # in a row: died soon after READY with nothing in flight
        self.failure: BaseException | None = None  # the crash loop that ended this slot
        self.first_ready: asyncio.Future[None] | None = None  # start() waits on it
        # Set when the current process gets ready, the slot fails for good, or the executor
        # closes: what replace_workers() waits on.
        self.serving = asyncio.Event()
        self.respawn: asyncio.TimerHandle | None = None  # a delayed restart

    @property
    def ready(self) -> bool:
        current = self.current
        return current is not None and current.state is State.READY

    def park(self, jobs: list[Job], *, suspect: bool) -> None:
        """Put jobs back to be sent again, keeping the order they first came in."""
        if not jobs:
            return
        for job in jobs:
            job.worker = None
            job.cancelling = False
        if suspect:
            self.suspects = deque(sorted([*self.suspects, *jobs], key=_token))
        else:
            self.queue = deque(sorted([*self.queue, *jobs], key=_token))

    def unsent(self, job: Job) -> bool:
        """Take a job that was not sent out of the slot; False if it was not there."""
        for where in (self.queue, self.suspects):
            try:
                where.remove(job)
            except ValueError:
                continue
            return True
        return False

    def unsent_cancelled(self, job: Job) -> None:
        """A job that was not sent was cancelled: it ends here and never runs."""
        if self.unsent(job):
            job.finished = True
            self.in_flight -= 1


def _token(job: Job) -> int:
    return job.token


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """One slot of the pool: its process and what it handled.

    ``pid`` is 0 while no process runs; ``state`` is the process's (``"ready"``,
    ``"starting"``, ``"stopping"``, ``"gone"``); ``in_flight`` counts updates routed to the
    slot and not finished (queued for it, or running); ``done`` the updates it finished;
    ``restarts`` the processes started after a death or hang; ``replaced`` those swapped by
    ``replace_workers()``.
    """

    slot: int
    pid: int
    state: str
    in_flight: int
    done: int
    restarts: int
    replaced: int


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """Something that happened to a worker process, for logs, metrics and tests.

    ``kind``: ``"spawned"``, ``"ready"``, ``"fatal"`` (start-up failed), ``"died"``,
    ``"hung"`` (no heartbeat; it is being terminated), ``"poison"`` (an update was set
    aside), ``"stopped"`` (a clean exit after STOP). ``at`` is ``time.monotonic()``.
    ``update_id`` is set for ``"poison"``; ``detail`` says more in words.
    """

    kind: str
    slot: int
    pid: int
    at: float
    detail: str = ""
    update_id: int | None = None


def now() -> float:
    """The clock of :class:`WorkerEvent` (``time.monotonic``)."""
    return time.monotonic()
