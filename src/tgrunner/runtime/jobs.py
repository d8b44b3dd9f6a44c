"""The jobs part of ``tgrunner run``: the bot's job queue, and the job workers beside it.

::

    jobs = BotJobs(settings)
    runner = Runner(..., startup=jobs.startup(fe.startup), shutdown=jobs.shutdown(fe.shutdown))

- **The queue** (``--jobs``; default the embedded one in ``<data dir>/<bot id>/jobs.sqlite``)
  is made the bot process's queue (:func:`~tgrunner.jobs.queue.use_queue`) as its start-up
  begins, before any handler runs, so ``task.enqueue(...)`` works in handlers; it is closed
  after the bot's own shutdown hook. It is opened at its first use (:class:`LazyQueue`), so a
  bot that queues no job leaves no queue file. With ``--workers N``
  each handler worker process opens it too (:meth:`BotJobs.for_workers` goes in their INIT).
- **Job workers** (``--job-workers N``): once the bot's checks passed (its token, its
  source), a :class:`~tgrunner.jobs.pool.ProcessPool` starts N ``python -m
  tgrunner.jobs.worker`` processes on the same queue. They get the token and the Bot API URL
  through their environment (``TGRUNNER_TOKEN``, ``TGRUNNER_API_URL``), never on a command
  line that ``ps`` shows, and have this folder on their path, so the tasks'
  ``module:qualname`` paths import as the bot's did. They are stopped after the bot: SIGTERM
  (each finishes its jobs within ``--grace``), then SIGKILL. A crash loop of theirs stops
  the bot with its error; a bot killed outright takes them with it (SIGTERM from the kernel).
- ``/readyz`` (``--metrics``) checks ``jobs`` (the queue answers) and, with job workers,
  ``job_workers`` (each slot has a process): see :func:`readiness`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tgrunner.errors import ConfigError, QueueUnavailable
from tgrunner.intake.options import DEFAULT_DATA_DIR, IntakeOptions
from tgrunner.jobs.pool import ProcessPool
from tgrunner.jobs.queue import JobInfo, JobQueue, JobRequest, open_queue, use_queue
from tgrunner.jobs.store import JobState
from tgrunner.runtime.hooks import Hook, closing, opening
from tgrunner.settings import Settings

__all__ = [
    "WORKER_MODULE",
    "BotJobs",
    "LazyQueue",
    "attach",
    "child_environment",
    "data_root",
    "jobs_of",
    "open_worker_queue",
    "readiness",
]

log = logging.getLogger(__name__)
say = logging.getLogger("tgrunner")


WORKER_MODULE = "tgrunner.jobs.process"
"""The module each job worker runs (``python -m``)."""

_STOP_MARGIN = 5.0  # seconds past the grace before a job worker is SIGKILLed
_CHECK_TIMEOUT = 2.0  # seconds a /readyz check of the queue may take
_TGRUNNER_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding tgrunner/

_BY_RUNNER: weakref.WeakKeyDictionary[Any, BotJobs] = weakref.WeakKeyDictionary()


class BotJobs:
    """The job queue and job workers of one bot run by ``tgrunner run`` (see the module doc).

    ``settings``: the run's (``jobs``, ``intake.data_dir``, ``grace``). ``token`` and
    ``api_url`` are set by the builder once it knows them.
    """

    def __init__(self, settings: Settings) -> None:
        self.options = settings.jobs
        self.settings = settings
        self.token = ""
        self.api_url = ""
        self.queue: JobQueue | None = None
        self.pool: ProcessPool | None = None
        self.on_failure: Callable[[BaseException], None] | None = None

    # -- what the handler worker processes are given ------------------------------------------

    def for_workers(self) -> dict[str, Any]:
        """What a handler worker process needs to open the same queue (JSON)."""
        return {"url": self.options.url, "data_dir": str(self._data_root())}

    def _data_root(self) -> Path:
        if not self.token:
            raise ConfigError("The job queue is found by the bot's id: no token was given")
        return data_root(self.settings.intake)

    # -- the lifecycle, as the runner's start-up and shutdown hooks ------------------------------

    def startup(self, inner: Hook | None) -> Hook:
        """The runner's start-up hook: open the queue, start the job workers, then ``inner``
        (the front-end's start-up); what was opened is closed again if any of it fails."""
        return opening(self.open, self.close, inner)

    def shutdown(self, inner: Hook | None) -> Hook:
        """The runner's shutdown hook: ``inner`` (the front-end's shutdown), then stop the job
        workers and close the queue."""
        return closing(self.close, inner)

    async def open(self) -> None:
        """Open the queue (this process's from now on) and start the job workers."""
        root = self._data_root()
        self.queue = queue = LazyQueue(self.options.url, data_dir=root, token=self.token)
        use_queue(queue)
        if not self.options.workers:
            return
        # Imported here: this module is imported with tgrunner, and so before
        # ``python -m tgrunner.jobs.process`` runs that module as __main__.
        from tgrunner.jobs.worker import EXIT_REPLACE

        self.pool = ProcessPool(
            self.command(root),
            processes=self.options.workers,
            env=self.environment(),
            grace=self.settings.grace,
            margin=_STOP_MARGIN,
            replace_code=EXIT_REPLACE,
            on_failure=self._failed,
        )
        try:
            await self.pool.start()
        except BaseException:
            await self.close()
            raise
        say.info(
            "%d job worker(s) on %s (pids %s)",
            self.options.workers,
            queue.url,
            ", ".join(map(str, self.pool.pids)),
        )

    def command(self, root: Path) -> list[str]:
        """The argv of one job worker (``python -m tgrunner.jobs.process``) on this bot's
        queue, with this folder on its path."""
        argv = [sys.executable, "-m", WORKER_MODULE, "--data-dir", str(root)]
        if self.options.url is not None:
            argv += ["--jobs", self.options.url]
        return [*argv, "--grace", f"{self.settings.grace:g}", "--path", os.getcwd(),
                "--ignore-sigint", "--log-level", _log_level()]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """The job workers' environment (see :func:`child_environment`)."""
        return child_environment(self.token, self.api_url)

    def _failed(self, exc: BaseException) -> None:
        if self.on_failure is not None:
            self.on_failure(exc)

    async def close(self) -> None:
        """Stop the job workers, then close the queue. Safe to call twice."""
        pool, self.pool = self.pool, None
        try:
            if pool is not None:
                await pool.close()
                for line in pool.summary():
                    say.info("%s", line)
        finally:
            queue, self.queue = self.queue, None
            if queue is not None:
                use_queue(None)
                await queue.close()

    async def ready(self) -> dict[str, bool]:
        """The ``/readyz`` checks: ``jobs`` (the queue answers within 2 s) and, with job
        workers, ``job_workers``."""
        checks: dict[str, bool] = {}
        queue = self.queue
        ok = queue is not None
        if queue is not None:
            try:
                async with asyncio.timeout(_CHECK_TIMEOUT):
                    await queue.check()
            except (QueueUnavailable, TimeoutError, OSError) as exc:
                log.warning("/readyz: the job queue %s does not answer: %s", queue.url, exc)
                ok = False
        checks["jobs"] = ok
        if self.options.workers:
            checks["job_workers"] = self.pool is not None and self.pool.ready
        return checks


def attach(runner: Any, jobs: BotJobs) -> None:
    """Tie ``jobs`` to ``runner``: its crash loops stop the runner, and :func:`jobs_of` finds
    it (for ``/readyz``)."""
    jobs.on_failure = runner._stop_failed
    _BY_RUNNER[runner] = jobs


def jobs_of(runner: Any) -> BotJobs | None:
    """The :class:`BotJobs` of ``runner``, if it has one."""
    return _BY_RUNNER.get(runner)


async def readiness(runner: Any) -> dict[str, bool]:
    """The jobs' ``/readyz`` checks of ``runner`` (none without jobs)."""
    jobs = jobs_of(runner)
    return {} if jobs is None else await jobs.ready()


async def open_worker_queue(spec: dict[str, Any] | None, token: str) -> JobQueue | None:
    """In a handler worker process: make the queue :meth:`BotJobs.for_workers` described
    (None: none) the process's."""
    if not spec:
        return None
    queue = LazyQueue(spec["url"], data_dir=spec["data_dir"], token=token)
    use_queue(queue)
    return queue


def child_environment(token: str, api_url: str) -> dict[str, str]:
    """A job worker process's environment: this one's, with the token and the Bot API URL (in
    the environment: a command line is seen in ``ps``), and this tgrunner first on its path."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_TGRUNNER_ROOT, os.getcwd(), path) if p)
    env["TGRUNNER_TOKEN"] = token
    env["TGRUNNER_API_URL"] = api_url
    return env


def _log_level() -> str:
    """This process's logging level, for the job workers' ``--log-level``."""
    return logging.getLevelName(logging.getLogger().getEffectiveLevel())


def data_root(intake: IntakeOptions) -> Path:
    """The data dir (``--data-dir``, else ``$TGRUNNER_DATA_DIR``, else ``./.tgrunner``), as an
    absolute path; not created here."""
    return Path(
        intake.data_dir or os.environ.get("TGRUNNER_DATA_DIR") or DEFAULT_DATA_DIR
    ).resolve()


class LazyQueue:
    """The queue ``url`` names (None: the embedded one in ``data_dir``), opened at its first
    use, in a thread (opening a busy SQLite file may wait): a bot that queues no job leaves
    no job queue file behind. A :class:`~tgrunner.jobs.queue.JobQueue`."""

    def __init__(self, url: str | None, *, data_dir: str | Path, token: str) -> None:
        self._url = url
        self._data_dir = Path(data_dir)
        self._bot_id = int(token.partition(":")[0])
        self.url = url or f"sqlite:///{self._data_dir / str(self._bot_id) / 'jobs.sqlite'}"
        self._queue: JobQueue | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> JobQueue:
        if self._queue is None:
            async with self._opening:
                if self._queue is None:
                    self._queue = await asyncio.to_thread(
                        open_queue, self._url, data_dir=self._data_dir, bot_id=self._bot_id
                    )
                    self.url = self._queue.url
                    log.debug("job queue %s open", self.url)
        return self._queue

    async def enqueue(self, request: JobRequest) -> str:
        return await (await self._open()).enqueue(request)

    async def info(self, job_id: str) -> JobInfo | None:
        return await (await self._open()).info(job_id)

    async def cancel(self, job_id: str) -> bool:
        return await (await self._open()).cancel(job_id)

    async def retry(self, job_id: str) -> bool:
        return await (await self._open()).retry(job_id)

    async def counts(self) -> dict[str, int]:
        return await (await self._open()).counts()

    async def listing(self, state: JobState, limit: int = 20) -> list[JobInfo]:
        return await (await self._open()).listing(state, limit)

    async def check(self) -> None:
        await (await self._open()).check()

    async def close(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            await queue.close()
