"""The options of the worker-process executor, validated when they are built."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tgrunner.checks import check_seconds
from tgrunner.errors import ConfigError

__all__ = [
    "CRASH_LIMIT",
    "POISON_DEATHS",
    "WorkerOptions",
    "available_cpus",
    "resolve_workers",
    "share_of",
]

POISON_DEATHS = 3
"""An update in flight at this many deaths of its worker is poison: it is not sent again."""

CRASH_LIMIT = 3
"""A worker slot whose process fails to get ready this many times in a row stops the
executor with the worker's error (an import error in the bot, say)."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How the worker processes are run and watched.

    - ``workers``: how many worker processes, default 2 (1 means "one worker process"; the
      runtime runs inline, in its own process, unless asked for workers).
    - ``heartbeat_timeout``: seconds without a frame from a ready worker before it is taken as
      hung (its event loop blocked) and replaced, default 10. It sends a heartbeat from its
      event loop five times per timeout.
    - ``startup_grace``: seconds a starting worker may take to load the bot and send READY,
      default 60, so a slow import is not killed.
    - ``kill_grace``: seconds between SIGTERM and SIGKILL for a hung worker, default 2.
    - ``stop_timeout``: seconds ``close()`` waits for the workers to drain and exit before it
      kills them, default 10.
    """

    workers: int = 2
    heartbeat_timeout: float = 10.0
    startup_grace: float = 60.0
    kill_grace: float = 2.0
    stop_timeout: float = 10.0

    def __post_init__(self) -> None:
        workers = self.workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(
                f"workers must be a whole number of at least 1 (worker processes), got {workers!r}"
            )
        check_seconds(
            self.heartbeat_timeout, "heartbeat_timeout", "how long a worker may be silent"
        )
        check_seconds(self.startup_grace, "startup_grace", "how long a worker may take to start")
        check_seconds(
            self.kill_grace, "kill_grace", "how long after SIGTERM a hung worker is killed"
        )
        check_seconds(self.stop_timeout, "stop_timeout", "how long a stopping worker may drain")

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between a worker's heartbeats: a fifth of the timeout."""
        return self.heartbeat_timeout / 5


def resolve_workers(value: int | str) -> int:
    """A worker count from ``--workers``: a whole number of at least 1, or ``"auto"`` (the
    CPUs this process may use). Raises ConfigError with a one-line message otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return available_cpus()
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(
                f"--workers takes a whole number of at least 1, or 'auto'; got {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--workers takes a whole number of at least 1, or 'auto'; got {value!r}")
    return value


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def share_of(concurrency: int, workers: int) -> int:
    """Each worker's share of the global concurrency: ``ceil(concurrency / workers)``.

    Raises ConfigError when there are more workers than the concurrency allows (a worker that
    may run no handler is a mistake).
    """
    if workers > concurrency:
        raise ConfigError(
            f"{workers} workers are more than the concurrency of {concurrency}: each worker "
            "needs room for at least one handler. Use fewer workers or raise --concurrency."
        )
    return -(-concurrency // workers)
