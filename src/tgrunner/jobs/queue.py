"""The job queue seen from the bot: one Protocol, backends by name, the process's open queue.

- :class:`JobQueue` is what a backend provides to the bot's side (enqueue, look up, cancel,
  retry, count); the worker's side is the backend's own.
- :func:`open_queue` picks the backend from ``--jobs``: none (the default) or ``sqlite:///PATH``
  is the embedded SQLite queue (by default ``<data dir>/<bot id>/jobs.sqlite``);
  ``redis://``, ``rediss://`` or ``unix://`` is RQ over Valkey/Redis. A backend's module, and
  its optional dependency, is imported only when it is chosen.
- :func:`current_queue` is the queue :meth:`Task.enqueue <tgrunner.jobs.task.Task.enqueue>`
  uses: ``tgrunner run`` opens it in the bot's process (and in each handler worker process);
  a script calls :func:`connect`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tgrunner.errors import ConfigError, JobError
from tgrunner.jobs.store import JobState

__all__ = [
    "BACKENDS",
    "JobInfo",
    "JobQueue",
    "JobRequest",
    "connect",
    "current_queue",
    "locate",
    "open_queue",
    "use_queue",
]

BACKENDS = {
    "sqlite": "tgrunner.jobs.backends.sqlite:SQLiteQueue",
    "redis": "tgrunner.jobs.backends.rq:RQQueue",
}
"""Backend name → ``"module:class"``; the class is built with ``(url, path)`` (see
:func:`open_queue`)."""

_SCHEMES = {"sqlite": "sqlite", "redis": "redis", "rediss": "redis", "unix": "redis"}


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One job to queue: ``function`` (``"module:qualname"``), ``payload`` (the pickled
    ``(args, kwargs)``), ``retries``, ``timeout`` (seconds or None) and ``reply_to`` (see
    :func:`~tgrunner.jobs.reply.reply_target`; None: no reply)."""

    function: str
    payload: bytes
    retries: int = 0
    timeout: float | None = None
    reply_to: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job as its backend knows it. ``result`` is the pickled return value (finished
    jobs), ``error`` the last run's error line; times are epoch seconds (None: not yet)."""

    id: str
    function: str
    state: JobState
    attempts: int
    enqueued_at: float
    ended_at: float | None
    result: bytes | None
    error: str | None
    reply_to: dict[str, Any] | None


@runtime_checkable
class JobQueue(Protocol):
    """A job queue backend, the bot's side. ``url``: where it is (password hidden)."""

    url: str

    async def enqueue(self, request: JobRequest) -> str:
        """Queue the job and return its id; QueueUnavailable when the backend stays
        unreachable through its retries (nothing queued)."""
        ...

    async def info(self, job_id: str) -> JobInfo | None:
        """The job, or None when there is none by that id (or its TTL ended)."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or scheduled job; False in any other state."""
        ...

    async def retry(self, job_id: str) -> bool:
        """Queue a failed or canceled job again; False in any other state."""
        ...

    async def counts(self) -> dict[str, int]:
        """Jobs per state, every state a key."""
        ...

    async def listing(self, state: JobState, limit: int = 20) -> list[JobInfo]:
        """Jobs in ``state``, newest first, at most ``limit``."""
        ...

    async def check(self) -> None:
        """Raise QueueUnavailable unless the backend answers now (for ``/readyz``)."""
        ...

    async def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


def open_queue(jobs: str | None, *, data_dir: str | Path, bot_id: int) -> JobQueue:
    """The queue ``jobs`` names: None for the embedded one in ``data_dir/<bot_id>/`` (created
    when missing), ``sqlite:///PATH`` for an embedded one at ``PATH``, or a ``redis://``,
    ``rediss://`` or ``unix://`` URL for RQ. ConfigError for anything else."""
    backend, url, path = locate(jobs, data_dir=data_dir, bot_id=bot_id)
    return _build(backend, url, path)


def locate(jobs: str | None, *, data_dir: str | Path, bot_id: int) -> tuple[str, str, Path | None]:
    """The backend name, URL and (SQLite) file path of the queue ``jobs`` names, as
    :func:`open_queue` reads it (the data dir's folder is created when missing); ConfigError
    for a URL of no backend."""
    if jobs is None:
        folder = Path(data_dir) / str(bot_id)
        folder.mkdir(parents=True, exist_ok=True)
        return "sqlite", f"sqlite:///{folder / 'jobs.sqlite'}", folder / "jobs.sqlite"
    scheme, sep, rest = jobs.partition("://")
    backend = _SCHEMES.get(scheme.lower()) if sep else None
    if backend is None:
        raise ConfigError(
            f"--jobs {jobs!r} is not a job queue URL: give redis://HOST:PORT/DB (RQ over "
            "Valkey/Redis), or sqlite:///PATH, or leave it out for the embedded queue in the "
            "data dir"
        )
    # sqlite:///rel/path is relative, sqlite:////abs/path absolute (SQLAlchemy's reading).
    path = Path(rest.removeprefix("/")) if backend == "sqlite" else None
    if path is not None and (not rest.strip("/") or not path.parent.is_dir()):
        raise ConfigError(
            f"--jobs {jobs!r}: the folder of the SQLite file does not exist; create it, or "
            "give sqlite:///PATH with an existing folder (sqlite:////abs/path for an absolute "
            "path)"
        )
    return backend, jobs, path


def backend_class(table: Mapping[str, str], backend: str) -> Any:
    """The class ``table`` names for ``backend`` (``"module:class"``), its module imported now;
    ConfigError, saying what to install, when its package is missing."""
    module_name, _, attr = table[backend].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"The {backend} job queue needs a package that is not installed ({exc.name}): "
            "pip install 'tgrunner[rq]'"
        ) from None
    return getattr(module, attr)


def _build(backend: str, url: str, path: Path | None) -> JobQueue:
    queue: JobQueue = backend_class(BACKENDS, backend)(url, path)
    return queue


_current: JobQueue | None = None


def use_queue(queue: JobQueue | None) -> None:
    """Make ``queue`` the one :meth:`~tgrunner.jobs.task.Task.enqueue` uses in this process
    (None: none). ``tgrunner run`` calls it; so does :func:`connect`."""
    global _current
    _current = queue


def current_queue() -> JobQueue:
    """The queue open in this process; JobError, saying how to open one, when there is none."""
    if _current is None:
        raise JobError(
            "no job queue is open in this process: run the bot with `tgrunner run` (it opens "
            "the embedded queue, or the one --jobs names), or call "
            "`await tgrunner.jobs.connect(...)` first"
        )
    return _current


async def connect(
    jobs: str | None = None, *, data_dir: str | Path = ".tgrunner", token: str
) -> JobQueue:
    """Open the queue ``jobs`` names (see :func:`open_queue`; default None, the embedded one
    in ``data_dir``, default ``./.tgrunner``, for the bot of ``token``), make it this
    process's queue and return it. For scripts and tests; ``tgrunner run`` does it itself."""
    bot_id, sep, _ = token.partition(":")
    if not sep or not bot_id.isdigit():
        raise ConfigError("connect() needs the bot's token (NUMBER:SECRET) to find its queue")
    queue = open_queue(jobs, data_dir=data_dir, bot_id=int(bot_id))
    use_queue(queue)
    return queue
