"""Where a job worker takes its jobs: the worker's side of a backend, one Protocol.

The worker loop (:mod:`tgrunner.jobs.worker`) knows nothing of SQLite or Redis; it claims,
renews, finishes, fails and releases through a :class:`JobSource`:

- :meth:`~JobSource.claim` gives one job to ``owner`` under a lease of ``lease`` seconds; the
  worker renews it (:meth:`~JobSource.renew`) while the job runs. A lease that ran out while
  its job was started is a *death*: the next claim takes the job again, and the third death
  fails it (``"killed its worker 3 times"``), leaving its failure message owed
  (:meth:`~JobSource.unreplied`).
- Only the lease's owner may renew, finish, fail or release the job; anyone else gets False
  and changes nothing.
- :meth:`~JobSource.finish` and a final :meth:`~JobSource.fail` record ``reply_sent`` in the
  same write as the completion: a reply is sent, then recorded with the job's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tgrunner.jobs.queue import backend_class, locate

__all__ = ["SOURCES", "Claim", "JobSource", "open_source"]

SOURCES = {
    "sqlite": "tgrunner.jobs.backends.sqlite:SQLiteSource",
    "redis": "tgrunner.jobs.backends.rq:RQSource",
}
"""Backend name → ``"module:class"`` of its worker's side, built with ``(url, path,
**options)`` (see :func:`open_source`)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A job as a worker gets it.

    ``function`` (``"module:qualname"``), ``payload`` (the pickled ``(args, kwargs)``),
    ``attempts`` (failed runs so far), ``retries`` (failed runs to run again), ``deaths``,
    ``timeout`` (seconds or None) and ``reply_to`` (the target of
    :func:`~tgrunner.jobs.reply.reply_target`, or None).
    """

    id: str
    function: str
    payload: bytes
    attempts: int
    retries: int
    deaths: int
    timeout: float | None
    reply_to: dict[str, Any] | None

    @property
    def last_try(self) -> bool:
        """Whether a failure of this run is final (no retry left)."""
        return self.attempts >= self.retries


@runtime_checkable
class JobSource(Protocol):
    """The worker's side of a job backend."""

    url: str

    async def claim(self, owner: str, lease: float) -> Claim | None:
        """The oldest runnable job, now ``owner``'s until ``lease`` seconds from now; None when
        none is runnable."""
        ...

    async def wait(self, timeout: float) -> None:
        """Return when a job may have become runnable, or after ``timeout`` seconds."""
        ...

    async def renew(self, job_id: str, owner: str, lease: float) -> bool:
        """Extend ``owner``'s lease; False when the job is no longer ``owner``'s."""
        ...

    async def finish(
        self, job_id: str, owner: str, result: bytes | None, *, reply_sent: bool
    ) -> bool:
        """End the run as finished with ``result`` (pickled, or None), recording
        ``reply_sent``; False when the job is not ``owner``'s."""
        ...

    async def fail(
        self, job_id: str, owner: str, error: str, *, retry_delay: float | None, reply_sent: bool
    ) -> bool:
        """End the run with ``error``: scheduled again ``retry_delay`` seconds from now when
        retries are left and ``retry_delay`` is not None, else failed for good with
        ``reply_sent`` recorded. False when the job is not ``owner``'s."""
        ...

    async def release(self, job_id: str, owner: str) -> bool:
        """Give an unfinished job back to the queue at once, no death or attempt counted."""
        ...

    async def set_status_message(self, job_id: str, owner: str, message_id: int) -> bool:
        """Record the status message a run sent (its progress), so a run after a death edits
        the same message; False when the job is not ``owner``'s."""
        ...

    async def unreplied(self, limit: int = 100) -> list[Claim]:
        """Ended jobs whose reply (or failure message) is owed, oldest first."""
        ...

    async def mark_reply_sent(self, job_id: str) -> bool:
        """Record an ended job's reply as sent; True for the one caller that did."""
        ...

    async def purge(self) -> int:
        """Delete ended jobs past their result or failure TTL; how many."""
        ...

    async def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


def open_source(
    jobs: str | None,
    *,
    data_dir: str | Path,
    bot_id: int,
    options: Mapping[str, Any] | None = None,
) -> JobSource:
    """The worker's side of the queue ``jobs`` names, read as
    :func:`~tgrunner.jobs.queue.open_queue` reads it (None: the embedded queue in
    ``data_dir/<bot_id>/``); ``options`` go to the backend's class (default none).
    ConfigError for a URL of no backend, or one whose package is not installed."""
    backend, url, path = locate(jobs, data_dir=data_dir, bot_id=bot_id)
    source: JobSource = backend_class(SOURCES, backend)(url, path, **dict(options or {}))
    return source
