"""The embedded queue over one :class:`~tgrunner.jobs.store.JobStore` file: the bot's side
(:class:`SQLiteQueue`) and the job worker's (:class:`SQLiteSource`).

On the bot's side each store call runs in a thread, off the bot's event loop (a commit may
checkpoint the file); the worker's side runs them on its loop (see :class:`SQLiteSource`).

**How an idle worker waits** (:meth:`SQLiteSource.wait`). By default (``wake="auto"``) it
sleeps on its doorbell FIFO (:mod:`tgrunner._doorbell`), which every commit that makes a job
runnable rings, and on a timer set to the next ``run_at`` of a scheduled job or
``lease_until`` of a started one (:meth:`~tgrunner.jobs.store.JobStore.next_due`): a new job
is taken within a fraction of a millisecond, a retry when its backoff ends, and a dead
worker's job when its lease runs out, with no polling. With ``wake="poll"`` (or where FIFOs
cannot be made) it polls instead: every 5 ms at first, doubling up to 100 ms, back to 5 ms
after each claim. ``bench/results/jobs.md`` compares the two.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Literal

from tgrunner._doorbell import Listener, listener_for
from tgrunner.errors import ConfigError, QueueUnavailable
from tgrunner.jobs.queue import JobInfo, JobRequest
from tgrunner.jobs.source import Claim
from tgrunner.jobs.store import STATES, JobRecord, JobState, JobStore, NewJob, new_job

__all__ = ["BATCH", "SQLiteQueue", "SQLiteSource", "claim_of", "info_of"]

BATCH = 500
"""Enqueues written in one transaction at most."""

_FIRST_POLL = 0.005
_LAST_POLL = 0.1
# A timer set to a run_at or a lease's end fires this much after it, so that the store's
# clock has passed it by the time the claim looks.
_DUE_SLACK = 0.002


def info_of(job: JobRecord) -> JobInfo:
    """The queue's view of a stored job."""
    return JobInfo(
        id=job.id,
        function=job.function,
        state=job.state,
        attempts=job.attempts,
        enqueued_at=job.enqueued_at,
        ended_at=job.ended_at,
        result=job.result,
        error=job.error,
        reply_to=job.reply_to,
    )


class SQLiteQueue:
    """The embedded queue in the SQLite file ``path`` (``url``: ``sqlite:///PATH``).

    Enqueues are group-committed: those that come while a write is under way are written
    together by the next one (at most :data:`BATCH` at a time), in one transaction, so many
    handlers queueing at once cost one commit, not one each.
    """

    def __init__(self, url: str, path: Path | None) -> None:
        if path is None:
            raise ConfigError("the SQLite job queue needs a file path")
        self.url = url
        self.store = JobStore(path)
        self._pending: list[tuple[NewJob, asyncio.Future[str]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def enqueue(self, request: JobRequest) -> str:
        job = new_job(
            request.function,
            request.payload,
            retries=request.retries,
            timeout=request.timeout,
            reply_to=request.reply_to,
        )
        written: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((job, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        return await asyncio.shield(written)

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            try:
                await asyncio.to_thread(self.store.enqueue_many, [job for job, _ in batch])
            except Exception as exc:
                error = QueueUnavailable(f"the job queue {self.url} cannot be written: {exc}")
                for _, written in batch:
                    if not written.done():
                        written.set_exception(error)
            else:
                for job, written in batch:
                    if not written.done():
                        written.set_result(job.id)

    async def info(self, job_id: str) -> JobInfo | None:
        job = await asyncio.to_thread(self.store.get, job_id)
        return None if job is None else info_of(job)

    async def cancel(self, job_id: str) -> bool:
        return await asyncio.to_thread(self.store.cancel, job_id)

    async def retry(self, job_id: str) -> bool:
        return await asyncio.to_thread(self.store.retry, job_id)

    async def counts(self) -> dict[str, int]:
        return await asyncio.to_thread(self.store.counts)

    async def listing(self, state: JobState, limit: int = 20) -> list[JobInfo]:
        if state not in STATES:
            raise ConfigError(f"no job state {state!r}: one of {', '.join(STATES)}")
        jobs = await asyncio.to_thread(self.store.listing, state, limit)
        return [info_of(job) for job in jobs]

    async def check(self) -> None:
        await asyncio.to_thread(self.store.counts)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.wait([self._writer])
        self.store.close()


def claim_of(job: JobRecord) -> Claim:
    """The worker's view of a stored job."""
    return Claim(
        id=job.id,
        function=job.function,
        payload=job.args,
        attempts=job.attempts,
        retries=job.max_retries,
        deaths=job.deaths,
        timeout=job.timeout,
        reply_to=job.reply_to,
    )


class SQLiteSource:
    """The job worker's side of the embedded queue in the SQLite file ``path``
    (:class:`~tgrunner.jobs.source.JobSource`). Its calls run on the event loop, without a
    thread (:meth:`JobStore.run <tgrunner.jobs.store.JobStore.run>`): a worker's loop has time
    for SQLite's few tens of µs, and a thread hop costs more.

    - ``wake``: how :meth:`wait` learns of a new job: ``"auto"`` (default: the doorbell FIFO
      where it can be made, else polling), ``"fifo"`` (the FIFO, or ConfigError) or
      ``"poll"``; see the module doc.
    - ``result_ttl`` / ``failure_ttl``: what :meth:`purge` keeps, in seconds (default 500 and
      a year, RQ's).
    """

    def __init__(
        self,
        url: str,
        path: Path | None,
        *,
        wake: Literal["auto", "fifo", "poll"] = "auto",
        result_ttl: float = 500.0,
        failure_ttl: float = 31_536_000.0,
    ) -> None:
        if path is None:
            raise ConfigError("the SQLite job source needs a file path")
        if wake not in ("auto", "fifo", "poll"):
            raise ConfigError(f"wake must be 'auto', 'fifo' or 'poll', not {wake!r}")
        self.url = url
        self.store = JobStore(path)
        self.wake = wake
        self.result_ttl = result_ttl
        self.failure_ttl = failure_ttl
        self._listener: Listener | None = None
        self._poll = _FIRST_POLL
        if wake != "poll":
            self._listener = listener_for(self.store.path)
            if self._listener is None and wake == "fifo":
                self.store.close()
                raise ConfigError(
                    f"no wake-up FIFO can be made beside {self.store.path}: use wake='poll'"
                )

    @property
    def waits_on_fifo(self) -> bool:
        """Whether :meth:`wait` sleeps on the doorbell FIFO (else it polls)."""
        return self._listener is not None

    async def claim(self, owner: str, lease: float) -> Claim | None:
        job = await self.store.run(self.store.claim, owner, lease)
        if job is None:
            return None
        self._poll = _FIRST_POLL
        return claim_of(job)

    async def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._listener is None:
                await asyncio.sleep(min(self._poll, left))
                self._poll = min(self._poll * 2, _LAST_POLL)
                return
            due = await self.store.run(self.store.next_due)
            if due is not None:
                until = due - time.time()
                if until <= 0:
                    return
                left = min(left, until + _DUE_SLACK)
            if await self._listener.wait(left):
                return
            # The timer fired: a run_at came (return), or a lease was renewed meanwhile (sleep
            # again, to its new end).

    async def renew(self, job_id: str, owner: str, lease: float) -> bool:
        return await self.store.run(self.store.renew, job_id, owner, lease)

    async def finish(
        self, job_id: str, owner: str, result: bytes | None, *, reply_sent: bool
    ) -> bool:
        return await self.store.run(self.store.finish, job_id, owner, result, reply_sent=reply_sent)

    async def fail(
        self, job_id: str, owner: str, error: str, *, retry_delay: float | None, reply_sent: bool
    ) -> bool:
        return await self.store.run(
            self.store.fail, job_id, owner, error, retry_delay=retry_delay, reply_sent=reply_sent
        )

    async def release(self, job_id: str, owner: str) -> bool:
        return await self.store.run(self.store.release, job_id, owner)

    async def set_status_message(self, job_id: str, owner: str, message_id: int) -> bool:
        return await self.store.run(self.store.set_status_message, job_id, owner, message_id)

    async def unreplied(self, limit: int = 100) -> list[Claim]:
        jobs = await self.store.run(self.store.unreplied, limit)
        return [claim_of(job) for job in jobs]

    async def mark_reply_sent(self, job_id: str) -> bool:
        return await self.store.run(self.store.mark_reply_sent, job_id)

    async def purge(self) -> int:
        return await self.store.run(self.store.purge, self.result_ttl, self.failure_ttl)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.store.close()
