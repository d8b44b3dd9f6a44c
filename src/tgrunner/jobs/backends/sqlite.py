"""The embedded queue: the bot's side of a :class:`~tgrunner.jobs.store.JobStore` file.

The store's calls are short transactions, but a busy file can make one wait for another
process's (up to its busy timeout), so each runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tgrunner.errors import ConfigError
from tgrunner.jobs.queue import JobInfo, JobRequest
from tgrunner.jobs.store import STATES, JobRecord, JobState, JobStore

__all__ = ["SQLiteQueue", "info_of"]


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
    """The embedded queue in the SQLite file ``path`` (``url``: ``sqlite:///PATH``)."""

    def __init__(self, url: str, path: Path | None) -> None:
        if path is None:
            raise ConfigError("the SQLite job queue needs a file path")
        self.url = url
        self.store = JobStore(path)

    async def enqueue(self, request: JobRequest) -> str:
        return await asyncio.to_thread(
            self.store.enqueue,
            request.function,
            request.payload,
            retries=request.retries,
            timeout=request.timeout,
            reply_to=request.reply_to,
        )

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
        self.store.close()
