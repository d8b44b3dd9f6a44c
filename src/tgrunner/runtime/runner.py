"""The single-process runtime: a source feeding the scheduler, safe offsets, a clean stop.

::

    Runner(router, token=TOKEN).run()       # blocks; SIGINT/SIGTERM stop it cleanly

The data path is ``PollingSource -> Scheduler -> handler``; each finished update advances the
watermark, and only the watermark's offset is ever sent to Telegram.

Stopping (``stop()``, SIGINT or SIGTERM): fetching stops, in-flight handlers get ``grace``
seconds to finish, the offset of everything finished is confirmed, and ``serve()`` returns 0.
A second signal (or ``stop(fast=True)``) cancels what runs and confirms only what finished;
``serve()`` then returns 1. Neither prints a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tgrunner.client.bot import DEFAULT_API_URL, Bot
from tgrunner.errors import ConfigError
from tgrunner.intake.watermark import Watermark
from tgrunner.scheduler import Scheduler
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingSource

__all__ = ["ErrorHook", "Runner", "RunnerStats", "TimeoutHook", "UpdateHandler", "run"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
UpdateHandler = Callable[[JSON, Bot], Awaitable[Any]]
ErrorHook = Callable[[JSON, BaseException], Awaitable[Any] | Any]
TimeoutHook = Callable[[JSON], Awaitable[Any] | Any]

# Allocations between collections of the youngest generation (CPython's default is 700).
_GC_GEN0 = 10_000


@dataclass(slots=True)
class RunnerStats:
    """Counters since start: updates received, finished, failed, timed out, stuck."""

    received: int = 0
    finished: int = 0
    errors: int = 0
    timeouts: int = 0
    stuck: int = 0


class Runner:
    """Run a bot handler over polling with per-chat order and safe offsets.

    - ``handler``: a :class:`~tgrunner.Router` or any ``async fn(update, bot)``.
    - ``bot`` or ``token`` (+ ``api_url``, default Telegram's): where to poll and reply.
    - ``settings``: :class:`~tgrunner.settings.Settings` (concurrency 500, grace 10 s, …).
    - ``on_error(update, exc)``: called when a handler raises (default: log with traceback).
    - ``on_timeout(update)``: called when a handler hits its time limit (default: log).
    - ``startup()`` / ``shutdown()``: awaited before the first fetch / after the last update
      finished and the offset was confirmed (a front-end's lifecycle hooks).
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
    ) -> None:
        if bot is None:
            if not token:
                raise ConfigError(
                    "No bot token: pass token=..., or set TGRUNNER_TOKEN or BOT_TOKEN."
                )
            # One connection per running handler, plus the poller: a handler never queues for
            # a connection behind the others.
            given = settings or Settings()
            client = given.client
            bot = Bot(
                token,
                api_url=api_url,
                pool_size=given.scheduler.concurrency + 2,
                transport=client.transport,
                proxy=client.proxy,
                timeout=client.timeout,
            )
            self._owns_bot = True
        else:
            self._owns_bot = False
        self.bot = bot
        self.handler = handler
        self.settings = settings or Settings()
        self.stats = RunnerStats()
        self.watermark = Watermark()
        self._on_error = on_error
        self._on_timeout = on_timeout
        self._startup = startup
        self._shutdown_hook = shutdown
        self._stop = asyncio.Event()
        self._fast = asyncio.Event()
        self._signals = 0
        self._hard_exit = False
        self.scheduler: Scheduler[JSON] = Scheduler(
            self._handle,
            options=self.settings.scheduler,
            key=self.settings.keys,
            on_done=self._done,
            on_error=self._error,
            on_timeout=self._timeout,
            on_stuck=self._stuck,
        )
        self.source = PollingSource(bot, self.watermark, self.settings.polling)

    # -- hooks wired into the scheduler -------------------------------------------------------

    def _handle(self, update: JSON) -> Awaitable[Any]:
        return self.handler(update, self.bot)

    def _done(self, update: JSON) -> None:
        self.stats.finished += 1
        wm = self.watermark
        before = wm.offset
        wm.finished(update["update_id"])
        if self.source.journal is not None:
            self.source.journal.finished(update["update_id"])
        if wm.offset != before:
            self.source.on_advance()

    async def _error(self, update: JSON, exc: BaseException) -> None:
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

    def _stuck(self, update: JSON) -> None:
        self.stats.stuck += 1

    # -- lifecycle ----------------------------------------------------------------------------

    def stop(self, fast: bool = False) -> None:
        """Ask the runner to stop: gracefully, or at once with ``fast``. Safe to call twice."""
        self._stop.set()
        if fast:
            self._fast.set()

    def _on_signal(self, signum: int) -> None:
        # Only record the signal; serve() acts on it.
        self._signals += 1
        log.info(
            "received %s, %s",
            signal.Signals(signum).name,
            "stopping" if self._signals == 1 else "exiting at once",
        )
        self.stop(fast=self._signals > 1)

    def _install_signals(self) -> list[int]:
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        return installed

    async def _fetch_loop(self) -> None:
        sched = self.scheduler
        source = self.source
        replay = source.replay()
        self.stats.received += len(replay)
        for update in replay:
            await sched.wait_capacity(1)
            sched.submit(update)
        while not self._stop.is_set():
            await sched.wait_capacity(1)
            batch = await source.next_batch(sched.capacity())
            self.stats.received += len(batch)
            for update in batch:
                if sched.capacity() < 1:
                    await sched.wait_capacity(1)
                sched.submit(update)

    async def serve(self, *, install_signals: bool = True) -> int:
        """Run until stopped; return 0 after a clean stop, 1 after a fast one.

        Raises :class:`~tgrunner.errors.ConfigError` when polling cannot work (bad token,
        a webhook is set, another instance polls).
        """
        installed = self._install_signals() if install_signals else []
        loop = asyncio.get_running_loop()
        started = False
        try:
            await self.source.start()
            if self._startup is not None:
                await self._startup()
            started = True
            if hasattr(self.handler, "set_username"):
                self.handler.set_username((await self.bot.get_me()).get("username"))
            fetch = loop.create_task(self._fetch_loop(), name="tgrunner-fetch")
            stop = loop.create_task(self._stop.wait())
            await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            fetch.cancel()
            failure: BaseException | None = None
            try:
                await fetch
            except asyncio.CancelledError:
                pass
            except ConfigError as exc:
                # Polling cannot go on (409, 401): finish what runs, confirm it, then say why.
                failure = exc
            code = await self._shutdown()
            if failure is not None:
                raise failure
            return code
        finally:
            try:
                if started and self._shutdown_hook is not None:
                    await self._shutdown_hook()
            finally:
                for sig in installed:
                    loop.remove_signal_handler(sig)
                if self._owns_bot:
                    await self.bot.close()

    async def _shutdown(self) -> int:
        sched = self.scheduler
        started = time.monotonic()
        if not self._fast.is_set() and (sched.running or sched.pending):
            log.info(
                "stopping: %d running, %d queued; waiting up to %.1f s",
                sched.running,
                sched.pending,
                self.settings.grace,
            )
            drain = asyncio.ensure_future(sched.drain(self.settings.grace))
            fast = asyncio.ensure_future(self._fast.wait())
            await asyncio.wait({drain, fast}, return_when=asyncio.FIRST_COMPLETED)
            fast.cancel()
            if not drain.done():
                drain.cancel()
            elif not drain.result():
                log.warning("grace of %.1f s ran out; cancelling the rest", self.settings.grace)
                self._fast.set()
        clean = not self._fast.is_set()
        if not clean:
            await sched.cancel_all()
            if sched.running:
                # cancel_all() gave them cancel_grace: these ignore cancellation.
                log.error(
                    "%d handler task(s) ignore cancellation; exiting without them", sched.running
                )
                self._hard_exit = True
        await self.source.confirm()
        log.info(
            "stopped in %.2f s; %d updates finished, offset %d confirmed",
            time.monotonic() - started,
            self.stats.finished,
            self.watermark.offset,
        )
        return 0 if clean else 1

    def run(self) -> int:
        """Run in a new event loop (uvloop when installed) until stopped; return the exit code.

        Exits the process at once if handlers ignore cancellation on a fast exit, since the
        interpreter would otherwise wait for them forever.
        """
        try:
            import uvloop

            factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
        except ImportError:
            factory = None
        # Everything imported and built so far lives as long as the process: move it out of
        # the collector's sight, and collect the youngest generation less often, so a backlog
        # of thousands of queued updates is not traversed again and again.
        gc.freeze()
        gc.set_threshold(_GC_GEN0, *gc.get_threshold()[1:])
        with asyncio.Runner(loop_factory=factory) as runner:
            code = runner.run(self.serve())
            if self._hard_exit:
                logging.shutdown()
                os._exit(code)
        return code


def run(handler: UpdateHandler, *, token: str | None = None, **kwargs: Any) -> int:
    """Build a :class:`Runner` and run it until SIGINT/SIGTERM; return the exit code.

    ``token`` defaults to ``TGRUNNER_TOKEN`` or ``BOT_TOKEN`` from the environment; other
    keyword arguments go to :class:`Runner`.
    """
    token = token or os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    if "settings" not in kwargs:
        kwargs["settings"] = Settings.from_env()
    return Runner(handler, token=token, **kwargs).run()
