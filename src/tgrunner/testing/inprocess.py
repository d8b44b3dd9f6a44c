"""Run a bot in-process against a FakeTelegram for the length of a block: :func:`running`.

::

    async def test_start(fake_telegram):
        alice = fake_telegram.user("Alice")
        async with running("mybot:router", fake_telegram):
            alice.send("/start")
            [reply] = await fake_telegram.wait_for_replies(alice, 1)

    def test_start_sync(fake_telegram):            # a FakeTelegram in thread mode
        with running(router, fake_telegram):
            ...                                    # the *_sync waits

The bot is whatever ``tgrunner run`` takes (an import string, a Router, an
``async def handler(update, bot)``, an aiogram Dispatcher or ``(dispatcher, bot)``, a PTB
Application), built by :func:`tgrunner.runtime.build.build_runner` with the fake's token and
URL, and served by a :class:`~tgrunner.runtime.runner.Runner` as in production: the journal
(in a temporary folder, removed at the end, unless the settings name one), per-chat order,
the front-end's start-up and shutdown.

The block starts once the bot polls, and ends with a clean stop: the long poll is abandoned at
once, running handlers finish (within ``grace``), and the front-end shuts down. A failure of
the bot itself (a token the fake refuses, a crash of the runtime) is raised when the block
ends, or at once if it happens during start-up. An error in a handler is not: it reaches the
runtime's error hook and the log (pytest shows it), and is counted in ``runner.stats.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import shutil
import sys
import tempfile
import threading
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

import tgrunner.testing.reset as framework_state
from tgrunner.runtime.build import build_runner
from tgrunner.settings import Settings

if TYPE_CHECKING:
    from tgrunner.runtime.runner import Runner
    from tgrunner.testing.fake.server import FakeTelegram

__all__ = ["Running", "running"]

log = logging.getLogger(__name__)

# Seconds past the stop budget before a bot that has not stopped is given up on.
_STOP_MARGIN = 5.0


def _named_object(target: Any) -> Any:
    """What an import string names, as build_runner loaded it (a factory: None, since each
    call builds a new object); any other target as it is."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    return None if inspect.isfunction(obj) else obj


class Running:
    """A bot running against a FakeTelegram for a block; see :func:`running`.

    ``async with`` serves it on the running event loop; plain ``with`` serves it from a
    background thread with its own loop (for sync tests; the FakeTelegram must be in thread
    mode). Either gives the :class:`~tgrunner.runtime.runner.Runner`. Single use.
    """

    def __init__(
        self,
        target: Any,
        tg: FakeTelegram,
        *,
        settings: Settings | None = None,
        reset_state: bool = True,
        start_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        self.target = target
        self.tg = tg
        self.settings = settings
        self.reset_state = reset_state
        self.start_timeout = start_timeout
        self.options = options
        self.runner: Runner | None = None
        self._used = False
        self._task: asyncio.Task[int] | None = None
        self._tmp: str | None = None
        # The sync form: the bot's thread, its loop, the event that ends the block, and a
        # failure to raise in the test's thread.
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- the async form ---------------------------------------------------------------------

    async def __aenter__(self) -> Runner:
        self._claim()
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._finish()

    # -- the sync form ----------------------------------------------------------------------

    def __enter__(self) -> Runner:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "'with running(...)' would block this event loop; in async code use "
                "'async with running(...)'."
            )
        loop = self.tg.state.loop
        if loop is None or not loop.is_running():
            raise RuntimeError(
                "'with running(...)' needs FakeTelegram in thread mode: use the fake_telegram "
                "fixture, or 'with FakeTelegram().in_thread() as tg'."
            )
        self._claim()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._hold(ready),), name="tgrunner-bot", daemon=True
        )
        self._thread.start()
        ready.wait()
        if self._error is not None:
            self._thread.join()
            error, self._error = self._error, None
            raise error
        assert self.runner is not None  # set by _start() before ready
        return self.runner

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        thread, loop, release = self._thread, self._loop, self._release
        if thread is None or loop is None or release is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop ended already
            loop.call_soon_threadsafe(release.set)
        thread.join(self._stop_budget() + _STOP_MARGIN)
        if thread.is_alive():
            raise RuntimeError(
                f"the bot did not stop within {self._stop_budget() + _STOP_MARGIN:g} s; a "
                "handler or a front-end hook may be blocking its event loop"
            )
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _hold(self, ready: threading.Event) -> None:
        """The bot's thread: start, let the test's block run, stop; failures are kept for the
        test's thread."""
        self._loop = asyncio.get_running_loop()
        self._release = asyncio.Event()
        try:
            await self._start()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            ready.set()
        await self._release.wait()
        try:
            await self._finish()
        except BaseException as exc:
            self._error = exc

    # -- start and stop ---------------------------------------------------------------------

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a running(...) block runs once; call running() again")
        self._used = True

    def _stop_budget(self) -> float:
        settings = self.runner.settings if self.runner is not None else self.settings
        return (settings or Settings()).stop_budget

    def _settings(self) -> Settings:
        settings = self.settings or Settings()
        intake = settings.intake
        if intake.journal and intake.data_dir is None and intake.journal_path is None:
            # Not ./.tgrunner in the test's folder, and no journal shared between runs.
            self._tmp = tempfile.mkdtemp(prefix="tgrunner-test-")
            settings = replace(settings, intake=replace(intake, data_dir=self._tmp))
        elif settings.state is None and intake.data_dir is None and settings.workers.workers == 1:
            settings = replace(settings, state="memory://")  # no data dir: no state file there
        return settings

    def _cleanup(self) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    async def _start(self) -> Runner:
        tg = self.tg
        if tg.state.loop is None:
            raise RuntimeError(
                "FakeTelegram is not serving: start it first ('async with FakeTelegram() as "
                "tg', 'FakeTelegram().in_thread()', or the fake_telegram fixture)."
            )
        try:
            runner = build_runner(
                self.target,
                token=tg.token,
                api_url=tg.api_url,
                settings=self._settings(),
                **self.options,
            )
            bot_object = _named_object(self.target)
            framework_state.prepare_for_loop(bot_object)
            if self.reset_state:
                framework_state.reset_state(bot_object)
        except BaseException:
            self._cleanup()
            raise
        self.runner = runner
        task = asyncio.get_running_loop().create_task(
            runner.serve(install_signals=False), name="tgrunner-test-bot"
        )
        polling = asyncio.ensure_future(tg.wait_until_polling(self.start_timeout))
        try:
            await asyncio.wait({task, polling}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                code = task.result()  # raises why the bot could not start
                raise RuntimeError(f"the bot stopped (exit code {code}) before it polled")
            polling.result()  # a TimeoutError naming the calls that did arrive
        except BaseException:
            polling.cancel()
            await self._abandon(task)
            raise
        self._task = task
        log.debug("running %r against %s", self.target, tg.api_url)
        return runner

    async def _abandon(self, task: asyncio.Task[int]) -> None:
        """A failed start: stop at once, then release what the start took."""
        assert self.runner is not None
        self.runner.stop(fast=True)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, self._stop_budget() + _STOP_MARGIN)
        self._cleanup()

    async def _finish(self) -> None:
        """Stop cleanly and wait; raise the bot's failure, or say why the stop was not clean."""
        runner, task = self.runner, self._task
        if runner is None or task is None:
            return
        try:
            runner.stop()
            budget = self._stop_budget() + _STOP_MARGIN
            try:
                done, _ = await asyncio.wait({task}, timeout=budget)
            except asyncio.CancelledError:
                runner.stop(fast=True)
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, budget)
                raise
            if not done:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise RuntimeError(f"the bot did not stop within {budget:g} s")
            code = task.result()  # raises the runtime's own failure
            if code != 0:
                raise RuntimeError(
                    f"the bot did not stop cleanly (exit code {code}): handlers still ran "
                    f"after the {runner.settings.grace:g} s grace period and were cancelled"
                )
        finally:
            self._cleanup()


def running(
    target: Any,
    tg: FakeTelegram,
    *,
    settings: Settings | None = None,
    reset_state: bool = True,
    start_timeout: float = 10.0,
    **options: Any,
) -> Running:
    """Run ``target`` in-process against ``tg`` for a block: ``async with`` (on the running
    loop) or ``with`` (from a thread, for sync tests; ``tg`` in thread mode). Both give the
    :class:`~tgrunner.runtime.runner.Runner` (``runner.stats``) once the bot polls, and stop it
    cleanly when the block ends.

    - ``target``: an import string (``"mybot:router"``, ``"mybot:create"`` for a factory), a
      Router, an ``async def handler(update, bot)``, an aiogram Dispatcher or
      ``(dispatcher, bot)``, a PTB Application.
    - ``settings``: default ``Settings()`` (not the environment's), with the journal (and the
      default state store) in a temporary folder removed at the end, unless the settings name
      a data dir or a journal; without a journal or a data dir the state store is in memory.
    - ``reset_state`` (default True): before the start, empty the in-memory state of the
      framework (aiogram's MemoryStorage; PTB's user, chat and bot data, conversations and
      callback data), so a module-level bot object run by several tests starts
      afresh each time; see :mod:`tgrunner.testing.reset`. False keeps it.
    - ``start_timeout`` (default 10 s): how long to wait for the bot's first poll; past it,
      TimeoutError lists the calls the fake saw.
    - ``options``: for the front-end, as for ``build_runner`` (``session="aiogram"``,
      ``request="ptb"``, ``bot=``, ``data=``).

    Raises, when the block ends, the bot's own failure, and RuntimeError when the stop was not
    clean (handlers outlived ``settings.grace``).
    """
    return Running(
        target,
        tg,
        settings=settings,
        reset_state=reset_state,
        start_timeout=start_timeout,
        **options,
    )
