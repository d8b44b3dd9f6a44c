"""The jobs options of ``tgrunner run``: which queue (``--jobs``), and how many job workers
run beside the bot (``--job-workers``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tgrunner.errors import ConfigError

__all__ = ["SCHEMES", "JobOptions", "backend_of", "check_jobs_url", "sqlite_path"]

SCHEMES = {"sqlite": "sqlite", "redis": "redis", "rediss": "redis", "unix": "redis"}
"""URL scheme → backend name (see :data:`tgrunner.jobs.queue.BACKENDS`)."""

_HINT = (
    "give redis://HOST:PORT/DB (RQ over Valkey/Redis) or sqlite:///PATH, or leave it out for "
    "the embedded queue in the data dir"
)


def backend_of(url: str | None) -> str:
    """The backend a ``--jobs`` value names: ``"sqlite"`` for None (the embedded queue) and
    ``sqlite:///``, ``"redis"`` for ``redis://``, ``rediss://`` and ``unix://``. ConfigError
    for anything else."""
    if url is None:
        return "sqlite"
    scheme, sep, rest = url.partition("://")
    backend = SCHEMES.get(scheme.lower()) if sep else None
    if backend is None or (backend == "sqlite" and not rest):
        raise ConfigError(f"--jobs {url!r} is not a job queue URL: {_HINT}")
    return backend


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///PATH`` URL: ``sqlite:///rel/path`` is relative to the
    current folder, ``sqlite:////abs/path`` absolute (as SQLAlchemy reads them)."""
    return Path(url.partition("://")[2].removeprefix("/"))


def check_jobs_url(text: str) -> str:
    """``text`` stripped when it is a job queue URL (see :func:`backend_of`) and, for
    ``sqlite:///PATH``, the file's folder exists; ValueError (for the CLI and the
    ``TGRUNNER_JOBS`` variable) saying what it must be."""
    url = text.strip()
    try:
        backend = backend_of(url)
    except ConfigError:
        raise ValueError(f"is not a job queue URL: {_HINT}") from None
    if backend == "sqlite" and not sqlite_path(url).parent.is_dir():
        raise ValueError(
            f"names a SQLite file in {sqlite_path(url).parent}, a folder that does not exist: "
            "create it, or give another path (sqlite:////abs/path for an absolute one)"
        )
    return url


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Where jobs are queued, and who runs them.

    - ``url``: the queue (``--jobs``); default None, the embedded SQLite queue in
      ``<data dir>/<bot id>/jobs.sqlite``; ``redis://HOST:PORT/DB`` for RQ over Valkey/Redis;
      ``sqlite:///PATH`` for an embedded queue elsewhere.
    - ``workers``: job worker processes ``tgrunner run`` starts beside the bot
      (``--job-workers``), default 0: none; jobs then wait for ``tgrunner worker``.
    """

    url: str | None = None
    workers: int = 0

    def __post_init__(self) -> None:
        backend_of(self.url)
        workers = self.workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ConfigError(
                f"the job workers must be a whole number, 0 or more (processes beside the "
                f"bot), got {workers!r}"
            )

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"redis"``."""
        return backend_of(self.url)
