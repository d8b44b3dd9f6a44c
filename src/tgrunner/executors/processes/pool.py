"""The pool of worker processes: spawning them, what they say, and what a death means.

The supervisor's :class:`~.supervisor.ProcessExecutor` routes updates to the pool's slots and
waits for them; the pool keeps each slot's process running and its jobs moving:

- ``DONE`` resolves a job (a future): success, :class:`~tgrunner.errors.HandlerError` (the
  worker's traceback as its ``__cause__``), or the end of a cancelled handler.
- A death puts the dead process's jobs back in its slot, blamed once more each (unless the
  supervisor ended the process on purpose), to be sent to the replacement in the order they
  first came. A job blamed :data:`POISON_DEATHS` times fails with
  :class:`~tgrunner.errors.PoisonUpdate`. A job blamed once goes again with the others (a
  random kill costs nothing more); one blamed twice is a *suspect*: it runs alone on its
  worker, so that its next death blames it and nothing else, and an update that merely ran
  beside a poison one is never quarantined with it. The slot gets a new process at once
  (after a back-off when processes keep dying with nothing in flight).
- A process that fails to get ready :data:`CRASH_LIMIT` times in a row ends its slot with a
  ConfigError carrying the worker's error (a UserCodeError with the trimmed traceback when
  the user's code raised): ``start()`` raises it, or ``on_failure`` gets it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson

from tgrunner.answers import ANSWERS
from tgrunner.errors import ConfigError, HandlerError, PoisonUpdate, UserCodeError
from tgrunner.executors.processes.options import CRASH_LIMIT, POISON_DEATHS, WorkerOptions
from tgrunner.executors.processes.process import State, WorkerProcess, describe_exit
from tgrunner.executors.processes.slots import Job, Slot, WorkerEvent, WorkerStats, now
from tgrunner.executors.processes.wire import (
    ANSWER,
    CANCELLED,
    DONE,
    FAILED,
    FATAL,
    METRICS,
    READY,
    RUN,
    Frame,
)

__all__ = ["Pool"]

log = logging.getLogger("tgrunner.executors.processes")

# A worker that dies this soon after READY with nothing in flight is in a loop of its own:
# its next start waits, 0.5 s doubling up to 10 s.
_QUICK_DEATH = 5.0
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 10.0


class Pool:
    """``options.workers`` slots and their processes, started with ``init`` (the INIT record)."""

    def __init__(
        self,
        options: WorkerOptions,
        init: dict[str, Any],
        *,
        on_failure: Callable[[BaseException], None] | None = None,
        on_event: Callable[[WorkerEvent], None] | None = None,
        on_poison: Callable[[int | None], None] | None = None,
    ) -> None:
        self.options = options
        self.init = init
        self.slots = [Slot(i) for i in range(options.workers)]
        self.alive: set[WorkerProcess] = set()
        self.closing = False  # set by close(): deaths restart nothing, jobs are cancelled
        self.poisoned = 0
        self._on_failure = on_failure
        self._on_event = on_event
        self._on_poison = on_poison
        # (slot, pid, snapshot) of each METRICS frame; set by ProcessExecutor.bind.
        self.on_metrics: Callable[[int, int, bytes], None] | None = None

    def send(self, worker: WorkerProcess, job: Job) -> None:
        job.worker = worker
        worker.sent[job.token] = job
        worker.send(RUN, job.token, job.data)

    def pump(self, slot: Slot) -> None:
        """Send what waits in the slot to its ready process: suspects first, each alone."""
        worker = slot.current
        if worker is None or worker.state is not State.READY:
            return
        if slot.suspects:
            if not worker.sent:
                self.send(worker, slot.suspects.popleft())
            return
        queue = slot.queue
        while queue:
            self.send(worker, queue.popleft())

    # -- what workers say -----------------------------------------------------------------------

    def _frames(self, worker: WorkerProcess, frames: list[Frame]) -> None:
        for kind, token, payload in frames:
            if kind == DONE:
                self._done(worker, token, payload)
            elif kind == READY:
                self._ready(worker)
            elif kind == FATAL:
                line, _, trace = payload.decode("utf-8", "replace").partition("\0")
                worker.fatal, worker.fatal_traceback = line, trace
                self._event("fatal", worker, line)
            elif kind == METRICS and self.on_metrics is not None:
                self.on_metrics(worker.slot, worker.pid, payload)
            # HEARTBEAT: the read itself renewed the worker's deadline.

    def _done(self, worker: WorkerProcess, token: int, payload: bytes) -> None:
        job = worker.sent.pop(token, None)
        if job is None:
            return
        worker.done += 1
        slot = self.slots[worker.slot]
        slot.done += 1
        slot.in_flight -= 1
        job.finished = True
        job.worker = None
        if not job.done():
            if not payload:
                job.succeed()
            elif payload[:1] == ANSWER:  # a webhook answer the handler left (direct mode)
                if job.update_id is not None:
                    ANSWERS.put(job.update_id, payload[1:])
                job.succeed()
            elif payload[:1] == FAILED:
                job.set_exception(_handler_error(payload[1:], worker))
            elif payload == CANCELLED and job.cancelling:
                job.succeed()
            else:
                job.set_exception(
                    HandlerError(f"the handler was cancelled inside {worker!r}", "CancelledError")
                )
        if slot.suspects or slot.queue:
            self.pump(slot)

    def _ready(self, worker: WorkerProcess) -> None:
        worker.ready()
        slot = self.slots[worker.slot]
        log.info("%r ready in %.2f s", worker, worker.ready_at - worker.started_at)
        self._event("ready", worker)
        if worker is slot.next:
            slot.next_failures = 0
            waiter = worker.ready_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if worker is not slot.current:  # retired while it started
            worker.stop()
            return
        slot.start_failures = 0
        slot.serving.set()
        first = slot.first_ready
        if first is not None and not first.done():
            first.set_result(None)
        self.pump(slot)

    def _hung(self, worker: WorkerProcess, what: str) -> None:
        self._event("hung", worker, what)

    # -- deaths ---------------------------------------------------------------------------------

    def _gone(self, worker: WorkerProcess) -> None:
        self.alive.discard(worker)
        slot = self.slots[worker.slot]
        victims = list(worker.sent.values())
        worker.sent.clear()
        how = describe_exit(worker.exit_code)
        if self.closing:
            for job in victims:
                _drop(slot, job)
            self._fail_waiter(worker.ready_waiter, RuntimeError("the executor was closed"))
            self._event("stopped" if worker.exit_code == 0 else "died", worker, how)
            return
        blame = worker.hung or not (worker.expected_end or worker.retiring)
        if worker.retiring and worker.exit_code == 0 and not victims:
            self._event("stopped", worker, how)
        else:
            self._event("died", worker, how)
            if worker.ready_at:
                log.warning(
                    "%r %s with %d update(s) in flight%s",
                    worker,
                    how,
                    len(victims),
                    "; they are sent again to its replacement" if victims else "",
                )
        self._resend(slot, victims, blame=blame)
        if worker is slot.next:
            slot.next = None  # dead before replace_workers() took it: that one tries again
            self._start_failed(slot, worker, replacing=True)
        elif worker is slot.current:
            slot.current = None
            slot.serving.clear()
            if not worker.ready_at:
                self._start_failed(slot, worker, replacing=False)
            else:
                self._restart(slot, worker, had_work=bool(victims))
        else:
            self.pump(slot)  # a retired process: its leftovers go to the current one

    def _resend(self, slot: Slot, victims: list[Job], *, blame: bool) -> None:
        again: list[Job] = []
        for job in victims:
            if job.cancelling:  # cancelled by its time limit: it ends here, not sent again
                job.finished = True
                slot.in_flight -= 1
                job.succeed()  # cancelled
                continue
            if blame:
                job.deaths += 1
                if job.deaths >= POISON_DEATHS:
                    self._poison(slot, job)
                    continue
            again.append(job)
        isolate = POISON_DEATHS - 1
        slot.park([j for j in again if j.deaths < isolate], suspect=False)
        slot.park([j for j in again if j.deaths >= isolate], suspect=True)

    def _poison(self, slot: Slot, job: Job) -> None:
        job.finished = True
        slot.in_flight -= 1
        self.poisoned += 1
        log.error(
            "update %s was in flight at %d deaths of worker %d; it is set aside as poison",
            job.update_id,
            job.deaths,
            slot.index,
        )
        self._emit(WorkerEvent("poison", slot.index, 0, now(), "quarantined", job.update_id))
        if self._on_poison is not None:
            try:
                self._on_poison(job.update_id)
            except Exception:
                log.exception("the on_poison hook failed on update %s", job.update_id)
        if not job.done():
            job.set_exception(PoisonUpdate(job.update_id, job.deaths))

    def _start_failed(self, slot: Slot, worker: WorkerProcess, *, replacing: bool) -> None:
        when = "right after" if worker.ready_at else "before"
        text = worker.fatal or (
            f"the worker process {describe_exit(worker.exit_code)} {when} it was ready"
        )
        if replacing:
            slot.next_failures += 1
            failures = slot.next_failures
        else:
            slot.start_failures += 1
            failures = slot.start_failures
        log.warning("%r failed to start (%d in a row): %s", worker, failures, text)
        if replacing:  # replace_workers() tries again, up to the limit
            self._fail_waiter(worker.ready_waiter, ConfigError(text))
            return
        if failures < CRASH_LIMIT:
            self.spawn(slot)
            return
        trace = worker.fatal_traceback
        error = UserCodeError(text, trace) if trace else ConfigError(text)
        slot.failure = error
        log.error(
            "worker %d failed to start %d times in a row; it is not started again: %s",
            slot.index,
            failures,
            text,
        )
        slot.serving.set()  # wakes replace_workers(), which raises the failure
        first = slot.first_ready
        if first is not None and not first.done():
            first.set_exception(error)
        elif self._on_failure is not None:
            self._on_failure(error)

    @staticmethod
    def _fail_waiter(waiter: asyncio.Future[None] | None, error: BaseException) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _restart(self, slot: Slot, worker: WorkerProcess, *, had_work: bool) -> None:
        slot.restarts += 1
        quick = not had_work and worker.gone_at - worker.ready_at < _QUICK_DEATH
        slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
        if slot.quick_deaths <= 1:
            self.spawn(slot)
            return
        delay = min(_BACKOFF_BASE * 2 ** (slot.quick_deaths - 2), _BACKOFF_CAP)
        log.warning("worker %d keeps dying with nothing in flight; restarting it in %.1f s",
                    slot.index, delay)  # fmt: skip
        slot.respawn = asyncio.get_running_loop().call_later(delay, self._delayed_spawn, slot)

    def _delayed_spawn(self, slot: Slot) -> None:
        slot.respawn = None
        if not self.closing and slot.current is None:
            self.spawn(slot)

    # -- processes ------------------------------------------------------------------------------

    def spawn(
        self, slot: Slot, *, role: str = "current", ready: asyncio.Future[None] | None = None
    ) -> WorkerProcess | None:
        worker = WorkerProcess(
            slot.index, self.options, on_frames=self._frames, on_gone=self._gone, on_hung=self._hung
        )
        worker.ready_waiter = ready
        init = {**self.init, "slot": slot.index, "sys_path": sys.path,
                "log_level": logging.getLogger().getEffectiveLevel()}  # fmt: skip
        try:
            worker.spawn(init)
        except OSError as exc:
            log.error("cannot start a worker process for slot %d: %s", slot.index, exc)
            error = ConfigError(f"Cannot start a worker process: {exc}")
            if role == "next":
                self._fail_waiter(ready, error)
            elif slot.first_ready is not None and not slot.first_ready.done():
                slot.first_ready.set_exception(error)
            elif self._on_failure is not None:
                slot.failure = error
                self._on_failure(error)
            return None
        self.alive.add(worker)
        if role == "next":
            slot.next = worker
        else:
            slot.current = worker
        self._event("spawned", worker)
        return worker

    # -- reporting ------------------------------------------------------------------------------

    def stats(self) -> list[WorkerStats]:
        """Per slot: pid, state, updates in flight, done, restarts, replacements."""
        return [
            WorkerStats(
                slot=s.index,
                pid=s.current.pid if s.current is not None else 0,
                state=s.current.state.value if s.current is not None else State.GONE.value,
                in_flight=s.in_flight,
                done=s.done,
                restarts=s.restarts,
                replaced=s.replaced,
            )
            for s in self.slots
        ]

    def _event(self, kind: str, worker: WorkerProcess, detail: str = "") -> None:
        if self._on_event is not None:
            self._emit(WorkerEvent(kind, worker.slot, worker.pid, now(), detail))

    def _emit(self, event: WorkerEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("the on_event hook failed on %s", event)

    async def kill_all(self, timeout: float) -> None:
        """SIGKILL every live process; wait up to ``timeout`` for them to be reaped."""
        workers = list(self.alive)
        for w in workers:
            w.expected_end = True
            w.kill()
        if workers:
            await asyncio.wait([w.exited for w in workers], timeout=timeout)

    def cancel_waiting(self) -> None:
        """Cancel the jobs no process holds (at close)."""
        for slot in self.slots:
            if slot.respawn is not None:
                slot.respawn.cancel()
                slot.respawn = None
            for job in (*slot.queue, *slot.suspects):
                _drop(slot, job)
            slot.queue.clear()
            slot.suspects.clear()
            slot.serving.set()  # wakes replace_workers(), which sees the executor closed


def _drop(slot: Slot, job: Job) -> None:
    """End a job that will not run (at close): its awaitable is cancelled."""
    job.finished = True
    job.worker = None
    slot.in_flight -= 1
    job.drop()


class _RemoteTraceback(Exception):
    """The traceback of a handler's exception, as the worker process formatted it."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def _handler_error(payload: bytes, worker: WorkerProcess) -> HandlerError:
    try:
        info = orjson.loads(payload)
        text, kind, trace = str(info["error"]), str(info.get("type", "")), str(info["traceback"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text, kind, trace = payload.decode("utf-8", "replace"), "", ""
    error = HandlerError(f"{text} (in {worker!r})", kind)
    if trace:
        error.__cause__ = _RemoteTraceback(trace)
    return error
