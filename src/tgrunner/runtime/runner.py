"""The runtime: a source feeding the intake, the scheduler and an executor; a clean stop.

::

    Runner(router, token=TOKEN).run()       # blocks; SIGINT/SIGTERM stop it cleanly

The data path is ``source -> intake -> scheduler -> executor``. The intake is the journal in
the bot's data dir by default: a fetched batch is written there before its offset is confirmed
to Telegram, and whatever had not finished is replayed on the next start. With strict offsets
(``IntakeOptions(journal=False)``, ``--no-journal``) the offset is the oldest unfinished update.

Backpressure: the source fetches no more than the scheduler can take. An update whose chat is
at its per-key limit waits in the journal (parked by id), so one full chat never stops the
others; with strict offsets it is shed, with a warning.

Stopping (``stop()``, SIGINT or SIGTERM): fetching stops, in-flight handlers get ``grace``
seconds to finish, what is done is confirmed, and ``serve()`` returns 0. A second signal (or
``stop(fast=True)``) cancels what runs; ``serve()`` then returns 1. A third exits at once. The
whole stop takes at most ``stop_budget`` seconds. A stop during start-up is honoured at once.
Any failure of the runtime itself (a full disk, a bad answer) gets the same clean stop, then
is raised. Neither prints a traceback.

Once the bot is known and the intake is open, one INFO line on the ``tgrunner`` logger says
what runs (the bot, front-end, source, intake, concurrency, transport); after the stop, one
more sums it up (see :mod:`.report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.answers import ANSWERS
from tgrunner.client.bot import DEFAULT_API_URL, Bot
from tgrunner.errors import ConfigError, PoisonUpdate
from tgrunner.executors.inline import InlineExecutor, UpdateHandler
from tgrunner.executors.processes import ProcessExecutor
from tgrunner.flood.limiter import FloodControl
from tgrunner.intake.journal import Journal
from tgrunner.intake.options import journal_path
from tgrunner.intake.strict import StrictIntake
from tgrunner.lifecycle import StopControl
from tgrunner.protocols import Executor, Source
from tgrunner.runtime.flood import runner_bot
from tgrunner.runtime.observe import Observation, close_observation, start_observation
from tgrunner.runtime.report import RunnerStats, start_line, summary_of
from tgrunner.runtime.sources import make_source
from tgrunner.runtime.workers import WorkerControl, serve_reloads
from tgrunner.scheduler import Scheduler
from tgrunner.scheduler.admission import Admission
from tgrunner.settings import Settings

__all__ = [
    "ErrorHook",
    "Runner",
    "RunnerStats",
    "TimeoutHook",
    "UpdateHandler",
    "loop_factory",
]

log = logging.getLogger(__name__)
# The start-up line and the stop summary: what a person running the bot reads.
say = logging.getLogger("tgrunner")

JSON = dict[str, Any]
ErrorHook = Callable[[JSON, BaseException], Awaitable[Any] | Any]
TimeoutHook = Callable[[JSON], Awaitable[Any] | Any]

# Parked updates (ids in memory, bodies in the journal) at most, per update the scheduler may
# hold; past it fetching waits.
_OVERFLOW_FACTOR = 10
# The share of the stop budget kept from the grace period, for cancelling what is still
# running and confirming (at most the scheduler's cancel_grace).
_CANCEL_SHARE = 0.25
# An extra ordering key shared by every replayed update that was started before a crash: such
# suspects run one at a time, so a crash during one of them blames that one alone.
SUSPECT_KEY = "tgrunner:suspect"


class Runner:
    """Run a bot handler over polling with per-chat order and no lost update.

    - ``handler``: a :class:`~tgrunner.Router` or any ``async fn(update, bot)``.
    - ``bot`` or ``token`` (+ ``api_url``, default Telegram's): where to poll and reply.
    - ``settings``: :class:`~tgrunner.settings.Settings` (concurrency 500, grace 10 s, the
      journal in ``./.tgrunner/``, …).
    - ``on_error(update, exc)``: called when a handler raises (default: log with traceback).
    - ``on_timeout(update)``: called when a handler hits its time limit (default: log).
    - ``startup()`` / ``shutdown()``: awaited before the first fetch / after the last update
      finished and the offset was confirmed (a front-end's lifecycle hooks).
    - ``source`` / ``executor``: other implementations of the Protocols (default: polling, and
      the handler inline). With a :class:`~tgrunner.executors.processes.ProcessExecutor`
      the runner quarantines its poison updates, stops on its crash loops and replaces its
      workers on SIGHUP (see :mod:`.workers`).
    - ``frontend``: the front-end's name in the start-up line, default ``"native"``.
    - ``flood``: the flood control of the Bot it builds, default one from ``settings.flood``.
    """

    def __init__(
        self,
        handler: UpdateHandler,
        *,
        bot: Bot | None = None,
        token: str | None = None,
        api_url: str = DEFAULT_API_URL,
        settings: Settings | None = None,
        on_error: ErrorHook | None = None,
        on_timeout: TimeoutHook | None = None,
        startup: Callable[[], Awaitable[Any]] | None = None,
        shutdown: Callable[[], Awaitable[Any]] | None = None,
        source: Source | None = None,
        executor: Executor | None = None,
        frontend: str = "native",
        flood: FloodControl | None = None,
    ) -> None:
        self.settings = settings = settings or Settings()
        if bot is None:
            if not token:
                raise ConfigError(
                    "No bot token: set BOT_TOKEN or TGRUNNER_TOKEN, or pass --token (tgrunner "
                    "run) or token=... (Runner)."
                )
            bot = runner_bot(token, api_url, settings, flood)
            self._owns_bot = True
        else:
            self._owns_bot = False
        self.bot = bot
        self.handler = handler
        self.frontend = frontend
        self.stats = RunnerStats()
        self.intake: Journal | StrictIntake = StrictIntake()
        self._on_error = on_error
        self._on_timeout = on_timeout
        self._startup = startup
        self._shutdown_hook = shutdown
        self._control = StopControl()
        self._hard_exit = False
        self._failure: BaseException | None = None
        self._stop_deadline: float | None = None  # when the stop budget runs out
        self._running: dict[int, None] = {}  # started and not finished, by update id
        self._stopping = False  # set by a stop: queued updates are skipped, not started
        self._skipped: set[int] = set()
        self._suspects: set[int] = set()  # replayed updates started before a crash
        self._starting: asyncio.Future[Any] | None = None  # the front-end's start-up
        self.scheduler: Scheduler[JSON] = Scheduler(
            self._execute,
            options=settings.scheduler,
            key=settings.keys,
            on_done=self._done,
            on_error=self._error,
            on_timeout=self._timeout,
            on_stuck=self._stuck,
        )
        self.admission = Admission(
            self.scheduler,
            read=lambda uid: self.intake.get(uid),
            release=self._release,
            durable=lambda: self.intake.durable,
            max_parked=_OVERFLOW_FACTOR * settings.scheduler.max_pending,
        )
        self.source: Source = source or make_source(bot, settings, backlog=self._backlog)
        direct = settings.webhook is not None and settings.webhook.mode == "direct"
        self._answer = getattr(self.source, "finished", None) if direct else None
        if direct:  # a handler's returned method may ride in the answer (tgrunner.answers)
            ANSWERS.enabled = True
            if isinstance(executor, ProcessExecutor):
                executor.bind(answers=True)
        self.executor: Executor = executor or InlineExecutor(handler, bot)
        self.workers: WorkerControl | None = None
        self.observation: Observation | None = None  # metrics: settings.metrics, in _open
        if isinstance(executor, ProcessExecutor):
            self.workers = WorkerControl(executor, failed=self._stop_failed)

    # -- hooks wired into the scheduler -------------------------------------------------------

    def _execute(self, update: JSON) -> Awaitable[Any]:
        uid = update["update_id"]
        if self._stopping:
            # A clean stop finishes what runs, not what is queued: the queued updates stay
            # unconfirmed (in the journal, or at Telegram) and are handled after the restart.
            self._skipped.add(uid)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        if self.workers is None:
            # Attempts are counted (a start mark) only where handlers run in this process: a
            # handler in a worker process cannot crash this one, and its worker's deaths are
            # counted by the pool, which quarantines a poison update itself.
            self._running[uid] = None
            self.intake.started(uid)
        return self.executor.execute(update)

    def _done(self, update: JSON) -> None:
        uid = update["update_id"]
        if self._skipped and uid in self._skipped:
            self._skipped.discard(uid)
            return
        if self._running:
            self._running.pop(uid, None)
        if self._answer is not None:  # a direct-mode webhook answers once handled
            self._answer(uid)
        workers = self.workers
        if workers is not None and workers.poisoned and workers.take_poisoned(uid):
            self.stats.quarantined += 1
            self._suspects.discard(uid)
            if workers.set_aside(self.intake, uid):
                self.admission.finished()
            else:
                self._release(uid)  # strict offsets: confirmed, never handled again
            return
        self.stats.finished += 1
        self._release(uid)

    def _release(self, uid: int) -> None:
        """The update needs nothing more: tell the intake, confirm, let parked ones move."""
        intake = self.intake
        if intake.durable:
            # The journal's offset moves with each fetched batch, not with finishes.
            if self._suspects and uid in self._suspects:
                # On disk before the next suspect starts: a crash then is not this one's.
                self._suspects.discard(uid)
                intake.finished(uid, now=True)
            else:
                intake.finished(uid)
        else:
            before = intake.offset
            intake.finished(uid)
            if intake.offset != before:
                self.source.confirm(intake.offset)
        self.admission.finished()

    async def _error(self, update: JSON, exc: BaseException) -> None:
        if isinstance(exc, PoisonUpdate):
            return  # quarantined (counted there), not a handler's error
        self.stats.errors += 1
        if self._on_error is None:
            log.error("handler failed on update %s", update.get("update_id"), exc_info=exc)
            return
        result = self._on_error(update, exc)
        if asyncio.iscoroutine(result):
            await result

    async def _timeout(self, update: JSON) -> None:
        self.stats.timeouts += 1
        if self._on_timeout is None:
            log.warning("handler timed out on update %s", update.get("update_id"))
            return
        result = self._on_timeout(update)
        if asyncio.iscoroutine(result):
            await result

    def _answer_resends(self, batch: list[JSON], fresh: list[JSON]) -> None:
        """Direct mode: the updates the journal already had (handled, being handled, or set
        aside) are answered now, or Telegram would send them for ever."""
        assert self._answer is not None
        kept = {u["update_id"] for u in fresh}
        for update in batch:
            if update["update_id"] not in kept:
                self._answer(update["update_id"])

    def _backlog(self) -> int:
        sched = self.scheduler
        return sched.pending + sched.running + self.admission.overflow.count

    def _stuck(self, update: JSON) -> None:
        self.stats.stuck += 1

    def _journal_failed(self, exc: BaseException) -> None:
        # A finish mark that cannot be written is a failure of the runtime: stop cleanly.
        log.error("the intake journal cannot be written (%s); stopping", exc)
        self._stop_failed(exc)

    def _stop_failed(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._control.request_stop()

    def _admit(self, update: JSON) -> None:
        keys = self.scheduler.keys_for(update)
        if self._suspects and update["update_id"] in self._suspects:
            keys = (*keys, SUSPECT_KEY)
        self.admission.admit(update, keys)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def hard_exit(self) -> bool:
        """Whether the process must exit at once after ``serve()`` returned, because handlers
        ignore cancellation (the interpreter would wait for them forever)."""
        return self._hard_exit

    def stop(self, fast: bool = False) -> None:
        """Ask the runner to stop: gracefully, or at once with ``fast``.

        Safe to call twice, from any thread, and before or during start-up.
        """
        self._control.request_stop(fast)

    async def _open(self) -> None:
        """Open the intake, check the source, start the executor and the front-end."""
        intake_opts = self.settings.intake
        if intake_opts.journal:
            path = journal_path(intake_opts, self.bot.id)
            self.intake = Journal(
                path,
                bot_id=self.bot.id,
                sync=intake_opts.journal_sync,
                on_error=self._journal_failed,
            )
            self.stats.quarantined = len(self.intake.quarantined_now)
            log.debug("intake journal %s opened", path)
        self.observation = await start_observation(self)
        # A webhook receives from its start: it starts once the workers and hooks are ready.
        # Polling's start checks the token first, before workers are spawned.
        receives_at_start = not getattr(self.source, "ordered", True)
        if receives_at_start:
            await self.source.check()  # type: ignore[attr-defined]  # a webhook: its token
        else:
            await self.source.start()
            if self.intake.offset >= 0:
                self.source.confirm(self.intake.offset)
        await self.executor.start()
        if self._startup is not None:
            # A front-end's start-up (aiogram's, PTB's) is not cut in half by a stop: a clean
            # stop lets it finish, so its shutdown can release what it opened.
            self._starting = asyncio.ensure_future(self._startup())
            await asyncio.shield(self._starting)
        if receives_at_start:
            await self.source.start()

    async def _fetch_loop(self) -> None:
        sched = self.scheduler
        source = self.source
        intake = self.intake
        replay = intake.unfinished()
        self.stats.replayed = len(replay)
        if replay:
            self._suspects = intake.suspects()
            log.info(
                "replaying %d unfinished update(s) from the journal (%d were being handled "
                "when the last run ended; they run one at a time)",
                len(replay),
                len(self._suspects),
            )
            if self._suspects:
                log.debug(
                    "suspects of the last crash, run one at a time: %s",
                    ", ".join(map(str, sorted(self._suspects))),
                )
        self.stats.received += len(replay)
        for update in replay:
            await sched.wait_capacity(1)
            self._admit(update)
        del replay
        highest = intake.offset - 1
        ordered = getattr(source, "ordered", True)  # False: a webhook's ids come in any order
        while True:
            await sched.wait_capacity(1)
            await self.admission.wait_for_room()
            batch = await source.next_batch(sched.capacity())
            if not batch:
                continue
            if not ordered:
                fresh = await intake.put(batch, ordered=False)
                source.confirm(intake.offset)
                if self._answer is not None and len(fresh) < len(batch):
                    self._answer_resends(batch, fresh)
                batch = fresh
            else:
                if batch[0]["update_id"] <= highest:
                    intake.restart_ids()  # the source saw the ids restart lower
                highest = batch[-1]["update_id"]
                batch = await intake.put(batch)
                if intake.durable:
                    source.confirm(intake.offset)
            self.stats.received += len(batch)
            if self.observation is not None:
                self.observation.received(batch)
            for update in batch:
                if sched.capacity() < 1:
                    await sched.wait_capacity(1)
                self._admit(update)

    async def serve(self, *, install_signals: bool = True) -> int:
        """Run until stopped; return 0 after a clean stop, 1 after a fast one.

        Raises :class:`~tgrunner.errors.ConfigError` when the bot cannot run (bad token, a
        webhook is set, another instance polls, the data dir is locked), and any failure of
        the runtime itself after a clean stop. Cancelling ``serve()`` cancels the handlers and
        closes everything before the cancellation goes on.
        """
        loop = asyncio.get_running_loop()
        control = self._control
        control.bind(loop)
        if install_signals:
            control.install(loop)
        started = opened = False
        since = time.monotonic()  # from the start-up line, once it is logged
        fetch: asyncio.Task[None] | None = None
        reloads: asyncio.Task[None] | None = None
        try:
            opening = loop.create_task(self._open(), name="tgrunner-start")
            if not await self._control.unless_stopped(opening, raise_error=True):
                log.info("stopped during start-up")
                started = await self._control.settle(self._starting, self.settings.stop_budget)
                return 1 if control.fast.is_set() else 0
            opened = started = True
            since = time.monotonic()
            say.info(self._start_line())
            fetch = loop.create_task(self._fetch_loop(), name="tgrunner-fetch")
            reloads = loop.create_task(serve_reloads(self.workers, control.reload))
            await self._control.unless_stopped(fetch)
            reloads.cancel()
            failure: BaseException | None = None
            if fetch.done() and not fetch.cancelled():
                failure = fetch.exception()
                if failure is not None:
                    log.error("fetching failed (%s); stopping cleanly", failure)
            code = await self._shutdown()
            failure = failure or self._failure
            if failure is not None:
                self.stats.stop = "failed"
                raise failure
            self.stats.stop = "clean" if code == 0 else "fast"
            return code
        finally:
            for task in (fetch, reloads):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            await self._close(started=started, opened=opened)
            if opened:
                self._summarise(time.monotonic() - since)

    def _start_line(self) -> str:
        intake = self.intake
        path = getattr(intake, "path", None)
        source = self.source
        return start_line(
            self.bot.me or {"id": self.bot.id},
            frontend=self.frontend,
            source=getattr(source, "description", type(source).__name__),
            intake=f"journal {path}" if intake.durable and path else "strict offsets",
            concurrency=self.settings.scheduler.concurrency,
            transport=self.bot.transport_name,
            workers=self.workers.executor.options.workers if self.workers else 1,
            proxy=self.bot.proxy,
        )

    def _summarise(self, seconds: float) -> None:
        stats = self.stats
        if self._hard_exit:
            stats.stop = "budget exceeded"
        elif not stats.stop:
            stats.stop = "cancelled"
        say.info(summary_of(stats, seconds))
        if self.workers is not None:
            say.info(self.workers.summary())

    async def _shutdown(self) -> int:
        sched = self.scheduler
        settings = self.settings
        started = time.monotonic()
        budget_end = self._stop_deadline = started + settings.stop_budget
        control = self._control
        # With the journal, queued updates stay in it for the next start. With strict offsets
        # the offset cannot pass them, and every finished update behind them would be handled
        # again: there the queue (at most the 100-update window) is drained too.
        self._stopping = self.intake.durable
        if self._stopping and sched.observer is not None:
            # What finishes now is told one by one to the observer, which can tell the
            # updates skipped as queued (self._skipped) from those handled.
            sched.observe(sched.observer)
        if not control.fast.is_set() and (sched.running or sched.pending):
            reserve = min(settings.scheduler.cancel_grace, settings.stop_budget * _CANCEL_SHARE)
            grace = min(settings.grace, settings.stop_budget - reserve)
            log.info(
                "stopping: %d running, %d queued%s; waiting up to %.1f s",
                sched.running,
                sched.pending,
                " (they stay in the journal)" if self._stopping else "",
                grace,
            )
            drain = asyncio.ensure_future(sched.drain(grace))
            fast = asyncio.ensure_future(control.fast.wait())
            await asyncio.wait({drain, fast}, return_when=asyncio.FIRST_COMPLETED)
            fast.cancel()
            if not drain.done():
                drain.cancel()
            elif not drain.result():
                log.warning("grace of %.1f s ran out; cancelling the rest", grace)
                control.fast.set()
        clean = not control.fast.is_set()
        if not clean:
            cancelled = list(self._running)
            await self._cancel_all()
            # The handlers cancelled here did not crash the process: their attempts do not
            # count towards quarantine.
            self.intake.uncount(cancelled)
            if sched.running:
                log.error(
                    "%d handler task(s) ignore cancellation; exiting without them", sched.running
                )
                self._hard_exit = True
        left = budget_end - time.monotonic()
        try:
            async with asyncio.timeout(max(left, 0.1)):
                await self.intake.flush()
                await self.source.close()
        except TimeoutError:
            log.error("the stop budget of %.1f s ran out while confirming", settings.stop_budget)
            self._hard_exit = True
        log.debug(
            "stopped in %.2f s; %d updates finished, offset %d confirmed",
            time.monotonic() - started,
            self.stats.finished,
            self.intake.offset,
        )
        return 0 if clean else 1

    def _budget_left(self) -> float:
        """Seconds left of the stop budget (all of it while no stop has begun)."""
        if self._stop_deadline is None:
            return self.settings.stop_budget
        return max(self._stop_deadline - time.monotonic(), 0.0)

    async def _cancel_all(self) -> None:
        """Cancel what runs and is queued; wait for it only as long as the budget allows."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._budget_left()):
                await self.scheduler.cancel_all()

    async def _close(self, *, started: bool, opened: bool) -> None:
        """Release everything, whatever happened before: hooks, intake, bot, signals."""
        try:
            if self.scheduler.running or self.scheduler.pending:
                await self._cancel_all()
            if started and self._shutdown_hook is not None:
                try:
                    async with asyncio.timeout(max(self._budget_left(), 0.1)):
                        await self._shutdown_hook()
                except TimeoutError:
                    log.error("the shutdown hook ran past the stop budget; leaving it")
        finally:
            try:
                if opened and isinstance(self.executor, ProcessExecutor):
                    await self.executor.close(fast=self._control.fast.is_set())
                elif opened:
                    await self.executor.close()
                await self.intake.close()
            finally:
                await close_observation(self.observation)
                self._control.uninstall()
                if self._owns_bot:
                    await self.bot.close()

    def run(self) -> int:
        """Run in a new event loop (uvloop when installed) until stopped; return the exit code.

        Exits the process at once if handlers ignore cancellation on a fast exit, since the
        interpreter would otherwise wait for them forever.
        """
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            code = runner.run(self.serve())
            if self._hard_exit:
                logging.shutdown()
                os._exit(code)
        return code


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for ``asyncio.Runner``: uvloop's when installed, else None
    (asyncio's default)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
