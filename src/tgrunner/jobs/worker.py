"""The job worker: takes jobs from any backend's :class:`~tgrunner.jobs.source.JobSource` and
runs them (:mod:`tgrunner.jobs.execute`); and its process, ``python -m tgrunner.jobs.process``.

::

    worker = JobWorker(source, bot, concurrency=4)
    code = await worker.serve()        # or worker.run(); worker.stop() ends it

- **Claims.** Up to ``concurrency`` jobs run at once. With a free slot the worker claims; when
  nothing is runnable it waits in ``source.wait()`` (a wake-up, never a tight loop).
- **Leases.** Each running job's lease (``lease`` seconds) is renewed every ``renew_every``
  seconds. A renewal that returns False means another worker may run the job: this run
  neither replies nor records, and a warning is logged.
- **Housekeeping.** Every ``sweep_every`` seconds, ``source.unreplied()``: the jobs failed at
  their worker's third death, whose user was not told. For each, the worker that wins
  ``mark_reply_sent`` (recorded *before* sending: at most one message) sends the task's
  failure message and calls the failure hooks. Every ``purge_every`` seconds,
  ``source.purge()`` (result and failure TTLs).
- **Clean stop** (:meth:`JobWorker.stop`, safe to call twice and from any thread; SIGTERM in
  the process): no new claim; running jobs get ``grace`` seconds to finish; then the
  unfinished ones are given back at once (``source.release``: queued again, no death
  counted). A job already sending its reply is let finish that. ``stop(fast=True)`` (a
  second signal) skips the grace. A sync job's thread cannot be stopped: its job is given
  back, and the thread ends with the process.
- **Burst** (``burst=True``): take jobs until none is runnable, none runs here and none this
  worker failed waits for its retry, then send the failure messages owed and return. (Jobs
  scheduled for later by other workers are left for the next run.)
- **Exit codes** (:meth:`JobWorker.serve` returns them): 0 a clean stop or a drained burst;
  :data:`EXIT_REPLACE` (3) a job overran its time limit in a thread that cannot be stopped
  (or an async one that ignored its cancellation): the worker stopped taking jobs, its other
  jobs finished or were released, and it must be replaced by a new process;
  :data:`EXIT_CONFIG` (2) Telegram refused the token (401), or the process's arguments or
  queue are wrong: do not start it again as it is; 1 (the process only) an unexpected error.

The process, ``python -m tgrunner.jobs.process`` (or ``tgrunner.jobs.process:main(argv)``), is
described in :mod:`tgrunner.jobs.process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError, JobFailed, Unauthorized
from tgrunner.jobs.context import Run
from tgrunner.jobs.delivery import ReplyPolicy
from tgrunner.jobs.execute import (
    Outcome,
    call_failure_hooks,
    execute,
    failure_message_of,
    send_reply,
)
from tgrunner.jobs.source import Claim, JobSource
from tgrunner.jobs.store import DEATHS_ERROR

__all__ = ["EXIT_CONFIG", "EXIT_REPLACE", "JobWorker", "WorkerStats", "default_owner"]

log = logging.getLogger(__name__)

EXIT_REPLACE = 3
"""A job's thread outlived its time limit: start a new worker in this one's place."""
EXIT_CONFIG = 2
"""The token, the arguments or the queue are wrong: starting it again will not help."""

_CLAIM_BACKOFF = (0.5, 30.0)  # first and last wait after a claim that raised
_REPLYING_GRACE = 30.0  # seconds a run sending its reply gets after the grace


def default_owner() -> str:
    """A lease owner unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(slots=True)
class WorkerStats:
    """What a worker did: jobs ``claimed``, ``finished``, ``retried`` (scheduled again),
    ``failed`` (for good), ``discarded`` (a lost lease), ``released`` (given back at a stop),
    and failure messages sent by the ``swept`` unreplied jobs."""

    claimed: int = 0
    finished: int = 0
    retried: int = 0
    failed: int = 0
    discarded: int = 0
    released: int = 0
    swept: int = 0


class JobWorker:
    """Runs the jobs of ``source``, replying through ``bot`` (see the module doc).

    - ``concurrency``: jobs at once (default 1).
    - ``lease``: seconds of each lease (default 5); ``renew_every``: seconds between renewals
      (default 2; at most 2, and under ``lease``).
    - ``burst``: drain, then return (default False).
    - ``grace``: seconds running jobs get to finish at a stop (default 30).
    - ``poll``: the longest ``source.wait()`` (default 1 s), in case a wake-up is missed.
    - ``sweep_every`` / ``purge_every``: housekeeping periods (default 5 s and 300 s).
    - ``reply_policy``: how hard replies are tried (default
      :class:`~tgrunner.jobs.delivery.ReplyPolicy()`).
    - ``owner``: the lease owner (default :func:`default_owner`).

    ``stats`` counts what it did (:class:`WorkerStats`).
    """

    def __init__(
        self,
        source: JobSource,
        bot: Bot,
        *,
        concurrency: int = 1,
        lease: float = 5.0,
        renew_every: float = 2.0,
        burst: bool = False,
        grace: float = 30.0,
        poll: float = 1.0,
        sweep_every: float = 5.0,
        purge_every: float = 300.0,
        reply_policy: ReplyPolicy | None = None,
        owner: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"a job worker's concurrency must be 1 or more, not {concurrency}")
        if not lease > 0 or not 0 < renew_every <= 2.0 or renew_every >= lease:
            raise ConfigError(
                f"a job worker needs lease > 0 and 0 < renew_every <= 2 s, below the lease; "
                f"got lease={lease}, renew_every={renew_every}"
            )
        if grace < 0 or not poll > 0 or not sweep_every > 0 or not purge_every > 0:
            raise ConfigError("grace must be 0 or more; poll, sweep_every, purge_every above 0")
        self.source = source
        self.bot = bot
        self.concurrency = concurrency
        self.lease = lease
        self.renew_every = renew_every
        self.burst = burst
        self.grace = grace
        self.poll = poll
        self.sweep_every = sweep_every
        self.purge_every = purge_every
        self.reply_policy = reply_policy or ReplyPolicy()
        self.owner = owner or default_owner()
        self.stats = WorkerStats()
        self._runs: dict[Run, asyncio.Task[None]] = {}
        self._renewals: dict[Run, asyncio.TimerHandle | asyncio.Task[None]] = {}
        self._stopping = False
        self._fast = False
        self._replace = False
        self._fatal: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._hurry: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._serving = False
        self._retry_due = 0.0  # monotonic time the last retry this worker scheduled comes due

    def __repr__(self) -> str:
        return f"<JobWorker {self.owner} on {self.source.url}>"

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._runs)

    @property
    def exit_code(self) -> int:
        """0, :data:`EXIT_REPLACE` or :data:`EXIT_CONFIG` (see the module doc)."""
        if self._fatal is not None:
            return EXIT_CONFIG
        return EXIT_REPLACE if self._replace else 0

    # -- lifecycle -----------------------------------------------------------------------------

    def stop(self, fast: bool = False) -> None:
        """Ask for a clean stop (``fast``: skip the grace). Safe to call twice, from any
        thread, before or while the worker serves."""
        self._stopping = True
        self._fast = self._fast or fast
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._thread:
            self._poke()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._poke)

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._stopping and self._stopped is not None:
            self._stopped.set()
        if self._fast and self._hurry is not None:
            self._hurry.set()

    def run(self) -> int:
        """:meth:`serve` in ``asyncio.run``; returns the exit code."""
        return asyncio.run(self.serve())

    async def serve(self) -> int:
        """Take and run jobs until stopped (or drained, in burst mode); return the exit code
        (see the module doc)."""
        if self._serving:
            raise RuntimeError("this JobWorker is serving already")
        self._serving = True
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()
        self._stopped = asyncio.Event()
        self._poke()
        house = None if self.burst else asyncio.create_task(self._housekeeping())
        log.info(
            "job worker %s ready: %d slot%s, %s%s",
            self.owner,
            self.concurrency,
            "" if self.concurrency == 1 else "s",
            self.source.url,
            " (burst)" if self.burst else "",
        )
        try:
            await self._claim_loop()
        finally:
            self._stopping = True
            self._poke()
            await self._shutdown()
            if house is not None:
                # It ends at its next pause; a failure message it is sending is let go out.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_REPLYING_GRACE):
                        await asyncio.shield(house)
                house.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await house
        log.info("job worker %s stopped: %s", self.owner, self.stats)
        return self.exit_code

    # -- taking jobs ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        assert self._wake is not None
        backoff = _CLAIM_BACKOFF[0]
        while True:
            self._wake.clear()
            if self._stopping or self._replace or self._fatal is not None:
                return
            if len(self._runs) < self.concurrency:
                began = time.monotonic()
                try:
                    claim = await self.source.claim(self.owner, self.lease)
                except Exception as exc:
                    log.warning("job worker: claiming failed (%s); trying again in %g s",
                                exc, backoff)  # fmt: skip
                    await self._pause(backoff)
                    backoff = min(backoff * 2, _CLAIM_BACKOFF[1])
                    continue
                backoff = _CLAIM_BACKOFF[0]
                if claim is not None and self._stopping:
                    # The stop came while the claim was under way: give the job back at once.
                    with contextlib.suppress(Exception):
                        await self.source.release(claim.id, self.owner)
                    return
                if claim is not None:
                    self._start(claim, began)
                    continue
                if self.burst and not self._runs and time.monotonic() >= self._retry_due:
                    await self._sweep()
                    return
                self._watch()
            await self._wake.wait()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop comes."""
        assert self._stopped is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    def _watch(self) -> None:
        """Have one task waiting in ``source.wait()``, which wakes the claim loop."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._wait_source())

    async def _wait_source(self) -> None:
        assert self._wake is not None
        try:
            await self.source.wait(self.poll)
        except Exception as exc:
            log.warning("job worker: waiting for jobs failed (%s)", exc)
            await asyncio.sleep(_CLAIM_BACKOFF[0])
        finally:
            self._wake.set()

    def _start(self, claim: Claim, began: float) -> None:
        self.stats.claimed += 1
        run = Run(
            claim,
            owner=self.owner,
            source=self.source,
            bot=self.bot,
            lease=self.lease,
            policy=self.reply_policy,
            held_until=began + self.lease,
        )
        self._runs[run] = asyncio.create_task(self._run(run), name=f"job {claim.id}")

    # -- one job -------------------------------------------------------------------------------

    async def _run(self, run: Run) -> None:
        self._renew_later(run)
        outcome: Outcome | None = None
        try:
            outcome = await execute(run)
        except asyncio.CancelledError:
            pass  # a stop past its grace: given back below
        except Unauthorized as exc:
            self._fatal = f"Telegram refused the bot's token ({exc}); get a new one from @BotFather"
            log.error("job worker: %s; stopping", self._fatal)
        except Exception:
            log.exception("job worker: job %s ended in an error of the worker", run.claim.id)
        finally:
            renewal = self._renewals.pop(run, None)
            if renewal is not None:
                renewal.cancel()
        try:
            if not run.recorded and not run.lost:
                await self._release(run)
        finally:
            del self._runs[run]
            assert self._wake is not None
            self._wake.set()
        if outcome is not None:
            self._count(outcome, run)

    def _count(self, outcome: Outcome, run: Run) -> None:
        stats = self.stats
        if outcome.state == "finished":
            stats.finished += 1
        elif outcome.state == "scheduled":
            stats.retried += 1
            due = time.monotonic() + (outcome.retry_in or 0.0)
            self._retry_due = max(self._retry_due, due)
        elif outcome.state == "failed":
            stats.failed += 1
        elif not run.released:
            stats.discarded += 1
        if outcome.stuck and not self._replace:
            self._replace = True
            log.error(
                "job %s (%s) %s and cannot be stopped (a sync job's thread, or a task that "
                "ignores cancellation): this worker takes no more jobs and exits (code %d) to "
                "be replaced",
                run.claim.id,
                run.claim.function,
                outcome.error,
                EXIT_REPLACE,
            )

    async def _release(self, run: Run) -> None:
        try:
            released = await self.source.release(run.claim.id, self.owner)
        except Exception as exc:
            log.error("job %s could not be given back (%s); its lease will run out",
                      run.claim.id, exc)  # fmt: skip
            return
        if released:
            self.stats.released += 1
            log.info("job %s (%s) given back to the queue", run.claim.id, run.claim.function)

    def _renew_later(self, run: Run) -> None:
        """Renew ``run``'s lease in ``renew_every`` seconds (a timer: most jobs end first)."""
        assert self._loop is not None
        self._renewals[run] = self._loop.call_later(self.renew_every, self._renew_now, run)

    def _renew_now(self, run: Run) -> None:
        self._renewals[run] = asyncio.create_task(self._renew(run))

    async def _renew(self, run: Run) -> None:
        at = time.monotonic()
        try:
            ok = await self.source.renew(run.claim.id, self.owner, self.lease)
        except Exception as exc:
            log.warning("job %s: renewing its lease failed (%s)", run.claim.id, exc)
        else:
            if not ok:
                if run.phase != "recording":  # else its end was just written: not a loss
                    run.lose("a renewal found another owner, or the job ended")
                self._renewals.pop(run, None)
                return
            run.renewed(at)
        if run in self._runs:
            self._renew_later(run)

    # -- stopping ------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if not self._runs:
            return
        grace = 0.0 if self._fast else self.grace
        log.info("job worker: stopping; %d job(s) running get %g s to finish",
                 len(self._runs), grace)  # fmt: skip
        await self._wait_runs(grace)
        if not self._runs:
            return
        left = list(self._runs.items())
        log.warning("job worker: %d job(s) did not finish within the grace; giving them back",
                    len(left))  # fmt: skip
        for run, task in left:
            run.release()
            if run.phase == "running":
                task.cancel()
        await self._wait_runs(_REPLYING_GRACE)
        for run, task in list(self._runs.items()):
            log.error("job %s is still sending its reply; cutting it (it may be sent again)",
                      run.claim.id)  # fmt: skip
            task.cancel()
        await self._wait_runs(_REPLYING_GRACE)

    async def _wait_runs(self, timeout: float) -> None:
        """Until every run ended, ``timeout`` seconds passed, or a fast stop came."""
        assert self._hurry is not None
        deadline = time.monotonic() + timeout
        hurry = asyncio.create_task(self._hurry.wait())
        try:
            while self._runs and not self._hurry.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                await asyncio.wait(
                    [*self._runs.values(), hurry], timeout=left, return_when="FIRST_COMPLETED"
                )
        finally:
            hurry.cancel()

    # -- housekeeping --------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        next_sweep = next_purge = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            if now >= next_sweep:
                await self._sweep()
                next_sweep = now + self.sweep_every
            if now >= next_purge:
                try:
                    purged = await self.source.purge()
                except Exception as exc:
                    log.warning("job worker: purging old jobs failed (%s)", exc)
                else:
                    if purged:
                        log.info("job worker: purged %d job(s) past their TTL", purged)
                next_purge = now + self.purge_every
            await self._pause(max(0.0, min(next_sweep, next_purge) - time.monotonic()))

    async def _sweep(self) -> None:
        """Tell the users of jobs failed at their worker's last death (see the module doc)."""
        try:
            owed = await self.source.unreplied()
        except Exception as exc:
            log.warning("job worker: listing unreplied jobs failed (%s)", exc)
            return
        for claim in owed:
            try:
                if not await self.source.mark_reply_sent(claim.id):
                    continue  # another worker tells this one
                log.warning("job %s (%s) failed at its worker's deaths; telling the user",
                            claim.id, claim.function)  # fmt: skip
                await send_reply(
                    self.bot,
                    failure_message_of(claim.function),
                    claim.reply_to,
                    policy=self.reply_policy,
                    job=f"{claim.id} ({claim.function})",
                )
                self.stats.swept += 1
                await call_failure_hooks(claim.id, claim.function,
                                         JobFailed(claim.id, DEATHS_ERROR))  # fmt: skip
            except Unauthorized as exc:
                self._fatal = f"Telegram refused the bot's token ({exc})"
                log.error("job worker: %s; stopping", self._fatal)
                assert self._wake is not None
                self._wake.set()
                return
            except Exception as exc:
                log.warning("job worker: the failure message of job %s failed (%s)",
                            claim.id, exc)  # fmt: skip
