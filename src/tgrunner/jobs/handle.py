"""``Job``: what ``enqueue`` returns, to follow a job from the bot's side."""

from __future__ import annotations

import asyncio
import pickle
from typing import TYPE_CHECKING, Any

from tgrunner.errors import JobCanceled, JobError, JobFailed
from tgrunner.jobs.store import FINAL_STATES, JobState

if TYPE_CHECKING:
    from tgrunner.jobs.queue import JobInfo, JobQueue

__all__ = ["Job"]

# Polling, for want of a wake-up from the backends: 5 ms at first, doubled up to 250 ms.
_FIRST_POLL = 0.005
_LAST_POLL = 0.25


class Job:
    """A queued job: ``id``, and its ``queue``."""

    __slots__ = ("id", "queue")

    def __init__(self, job_id: str, queue: JobQueue) -> None:
        self.id = job_id
        self.queue = queue

    def __repr__(self) -> str:
        return f"<Job {self.id}>"

    async def _info(self) -> JobInfo:
        info = await self.queue.info(self.id)
        if info is None:
            raise JobError(
                f"job {self.id} is not in {self.queue.url}: it never was, or its result or "
                "failure TTL ended"
            )
        return info

    async def status(self) -> JobState:
        """Its state now: queued, scheduled, started, finished, failed or canceled."""
        return (await self._info()).state

    async def cancel(self) -> bool:
        """Cancel it if it is still queued or scheduled; False otherwise."""
        return await self.queue.cancel(self.id)

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for it to end and return what its function returned.

        Raises :class:`~tgrunner.errors.JobFailed` (its ``error``) when it failed,
        :class:`~tgrunner.errors.JobCanceled` when it was canceled, and ``TimeoutError``
        when it has not ended within ``timeout`` seconds (default None: wait as long as it
        takes).
        """
        async with asyncio.timeout(timeout):
            delay = _FIRST_POLL
            while True:
                info = await self._info()
                if info.state in FINAL_STATES:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LAST_POLL)
        if info.state == "failed":
            raise JobFailed(self.id, info.error or "no error recorded")
        if info.state == "canceled":
            raise JobCanceled(self.id)
        return None if info.result is None else pickle.loads(info.result)
