"""An entry point run unchanged: tgrunner calls the user's ``main()`` and runs the bot it starts.

::

    EntryPoint(quick.main, "quick:main", build=...).run()     # what tgrunner run quick:main does

While the entry point runs, the polling calls of the imported frameworks are intercepted
(:func:`tgrunner.frontends.intercepting`): when ``main()`` reaches ``await
dp.start_polling(bot)`` or ``application.run_polling()``, tgrunner builds its own
:class:`~tgrunner.runtime.runner.Runner` for that Dispatcher or Application, with the options
passed there, and serves it **inside that call**: the entry point's frame stays alive, so the
resources it opened around the call (``async with`` a database pool, an HTTP session passed
as workflow data) stay open while the bot runs. Once the runner stopped, the call returns and
the code after it (``await bot.session.close()``, say) runs as under the framework. An async
call (aiogram's ``start_polling``) is served on the running loop; a blocking one (PTB's
``run_polling``, aiogram's ``run_polling``) on a new event loop, as the framework would.

- A second polling call (a restart loop after the stop) ends the entry point: it is unwound
  with an exception it does not catch (a ``BaseException``), and the first run's exit code
  stands.
- When the runner cannot be built or fails, the entry point is unwound the same way and the
  error is raised once it returned.
- An entry point that returns a bot object without starting it was a factory: that object is
  run. One that returns nothing ends with a ConfigError (exit code 2).
- An exception from the entry point itself becomes a
  :class:`~tgrunner.errors.UserCodeError` with its trimmed traceback.

Calls the entry point makes before it starts polling (``await bot.delete_webhook()``, say) go
to the server and token written in its code: ``--api-url`` and ``--token`` apply from the
polling call on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

from tgrunner.errors import ConfigError
from tgrunner.frontends import PollingCall, intercepting
from tgrunner.runtime.loader import Target, import_target, user_code_error
from tgrunner.runtime.runner import Runner, loop_factory

__all__ = ["EntryPoint", "RefusePolling", "import_guarded", "run_awaitable"]

log = logging.getLogger(__name__)

Build = Callable[[Any, "PollingCall | None"], Runner]


class _Unwind(BaseException):
    """Raised through the user's entry point to end it (not an Exception: its ``except
    Exception`` must not swallow it)."""


class EntryPoint:
    """Call ``fn`` (no arguments, sync or async) and run on tgrunner the bot it starts.

    - ``name``: the target as the user wrote it (``"quick:main"``), for messages.
    - ``build(obj, call)``: the Runner for a Dispatcher or Application the entry point started
      (``call`` says how) or returned (``call`` is None).

    The lifecycle is the Runner's: ``await serve()``, ``run()``, ``stop()``; ``runner`` is the
    Runner once the entry point started a bot.
    """

    def __init__(self, fn: Callable[[], Any], name: str, *, build: Build) -> None:
        self.fn = fn
        self.name = name
        self.runner: Runner | None = None
        self._build = build
        self._lock = threading.Lock()
        self._started: str | None = None  # the polling call that started the bot
        self._code: int | None = None
        self._error: BaseException | None = None
        self._stop: bool | None = None  # a stop asked for before the runner existed: fast?
        self._signals = True
        self._owns_process = False

    # -- the lifecycle ------------------------------------------------------------------------

    def stop(self, fast: bool = False) -> None:
        """Ask the bot to stop (see :meth:`Runner.stop`); before it started, the entry point is
        ended at its polling call. Safe to call twice, from any thread."""
        with self._lock:
            self._stop = fast or bool(self._stop)
            runner = self.runner
        if runner is not None:
            runner.stop(fast)

    async def serve(self, *, install_signals: bool = True) -> int:
        """Call the entry point (a sync one in a thread) and serve what it starts; return the
        exit code (0: clean stop)."""
        self._signals = install_signals
        with intercepting(self):
            try:
                if inspect.iscoroutinefunction(self.fn):
                    result = await self.fn()
                else:
                    result = await asyncio.to_thread(self.fn)
                    if inspect.isawaitable(result):
                        result = await result
            except _Unwind:
                return self._outcome()
            except Exception as exc:
                raise self._user_error(exc) from None
        if self._started is not None:
            return self._outcome()
        runner = self._returned(result)
        code = await runner.serve(install_signals=install_signals)
        if self._owns_process and runner.hard_exit:
            logging.shutdown()
            os._exit(code)
        return code

    def run(self) -> int:
        """Call the entry point in this thread and run what it starts; return the exit code.

        Exits the process at once when handlers ignore cancellation on a fast exit, as
        :meth:`Runner.run` does."""
        self._owns_process = True
        if inspect.iscoroutinefunction(self.fn):
            with asyncio.Runner(loop_factory=loop_factory()) as loop:
                return loop.run(self.serve())
        with intercepting(self):
            try:
                result = self.fn()
                if inspect.isawaitable(result):
                    result = run_awaitable(result)
            except _Unwind:
                return self._outcome()
            except Exception as exc:
                raise self._user_error(exc) from None
        if self._started is not None:
            return self._outcome()
        return self._returned(result).run()

    # -- the polling calls (tgrunner.frontends.Handoff) ---------------------------------------

    async def serve_call(self, call: PollingCall) -> None:
        """Run what ``call`` started on this event loop; return once it stopped."""
        runner = self._take(call)
        try:
            code = await runner.serve(install_signals=self._signals)
        except Exception as exc:  # raised once the entry point has been unwound
            self._error = exc
            raise _Unwind from None
        self._code = code
        if self._owns_process and runner.hard_exit:
            logging.shutdown()
            os._exit(code)

    def run_call(self, call: PollingCall) -> None:
        """Run what a blocking ``call`` started, on a new event loop in this thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self.refuse(
                f"it calls {call.call} inside a running event loop, where it cannot block: "
                "call it from a plain 'def main()', or await the framework's async start"
            )
        with asyncio.Runner(loop_factory=loop_factory()) as loop:
            loop.run(self.serve_call(call))

    def refuse(self, message: str) -> NoReturn:
        """End the entry point: ``name`` cannot run, because of ``message``."""
        self._error = ConfigError(f"{self.name} cannot run on tgrunner: {message}.")
        raise _Unwind

    # -- internals ----------------------------------------------------------------------------

    def _take(self, call: PollingCall) -> Runner:
        with self._lock:
            again = self._started is not None
            if not again:
                self._started = call.call
            stopped = self._stop
        if again:
            if self._code is None:
                self._error = ConfigError(
                    f"{self.name} starts a second bot ({call.call}) while the first runs; "
                    "tgrunner runs one bot per process: run each with its own tgrunner run"
                )
            raise _Unwind
        if stopped is not None:
            self._code = 1 if stopped else 0
            raise _Unwind
        if call.ignored:
            log.debug("%s: tgrunner has no use for %s", call.call, ", ".join(call.ignored))
        try:
            runner = self._build(call.target, call)
        except Exception as exc:
            self._error = exc
            raise _Unwind from None
        log.info("%s called %s: tgrunner runs it", self.name, call.call)
        with self._lock:
            self.runner = runner
            stopped = self._stop
        if stopped is not None:
            runner.stop(stopped)
        return runner

    def _user_error(self, exc: Exception) -> Exception:
        # What the entry point's code raised while tgrunner unwound it (an ``async with``
        # whose exit fails, say) follows from tgrunner's own error: that one is reported.
        if self._error is not None and isinstance(self._error, Exception):
            return self._error
        return user_code_error(exc, f"{self.name} raised")

    def _outcome(self) -> int:
        if self._error is not None:
            raise self._error
        if self._code is None:
            raise ConfigError(f"{self.name} stopped before its bot did")
        return self._code

    def _returned(self, result: Any) -> Runner:
        """The Runner for what the entry point returned without starting it (a factory's)."""
        if result is None:
            raise ConfigError(
                f"{self.name} returned without starting a bot: it never called "
                "dp.start_polling(...) / application.run_polling(). Point tgrunner at the "
                "Dispatcher or Application instead, or start it in the function"
            )
        try:
            runner = self._build(result, None)
        except ConfigError as exc:
            raise ConfigError(
                f"{self.name} returned a {type(result).__name__} without starting a bot, and "
                f"tgrunner cannot run that: {exc}"
            ) from None
        log.info(
            "%s returned a %s: running it (a factory; --factory says so)",
            self.name,
            type(result).__name__,
        )
        self.runner = runner
        return runner


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def run_awaitable(awaitable: Any) -> Any:
    """Await ``awaitable`` on a new event loop and return its result: in this thread, or in a
    helper thread when this one already runs a loop (a factory loaded from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(awaitable))
    with ThreadPoolExecutor(1, thread_name_prefix="tgrunner-factory") as pool:
        return pool.submit(asyncio.run, _awaited(awaitable)).result()


class RefusePolling:
    """A :class:`~tgrunner.frontends.Handoff` for code that must not start a bot: a factory
    (it returns its bot; one that starts it is an entry point), or a module being imported.
    Any polling call ends that code with a ConfigError; see :meth:`call` and
    :func:`import_guarded`."""

    def __init__(self, name: str, *, importing: bool = False) -> None:
        self.name = name
        self.importing = importing
        self.error: ConfigError | None = None

    async def serve_call(self, call: PollingCall) -> None:
        self._refuse(call.call)

    def run_call(self, call: PollingCall) -> None:
        self._refuse(call.call)

    def refuse(self, message: str) -> NoReturn:
        self.error = ConfigError(f"{self.name} cannot run on tgrunner: {message}.")
        raise _Unwind

    def _refuse(self, call: str) -> NoReturn:
        if self.importing:
            module = self.name.partition(":")[0]
            self.error = ConfigError(
                f"importing {module!r} starts the bot ({call} runs while the module is "
                "imported): put the code that starts it under 'if __name__ == \"__main__\":', "
                f"then run tgrunner run {module}:main, or point tgrunner at the Dispatcher or "
                "Application"
            )
        else:
            self.error = ConfigError(
                f"{self.name} starts the bot itself ({call}), so it is an entry point, not a "
                "factory returning the bot: run it without --factory"
            )
        raise _Unwind

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, awaited on a new event loop when it returns an awaitable; polling calls
        raise ConfigError, the user's exceptions UserCodeError."""
        with intercepting(self):
            try:
                result = fn()
                if inspect.isawaitable(result):
                    result = run_awaitable(result)
            except _Unwind:
                raise self._error() from None
            except Exception as exc:
                if self.error is not None:  # raised while tgrunner unwound the call
                    raise self.error from None
                raise user_code_error(exc, f"{self.name} raised") from None
        return result

    def _error(self) -> ConfigError:
        return self.error or ConfigError(f"{self.name} was ended by tgrunner")


def import_guarded(spec: str) -> Target:
    """:func:`~tgrunner.runtime.loader.import_target`, refusing a module that starts its bot
    while it is imported (``asyncio.run(main())`` without an ``if __name__ == "__main__":``
    guard): the framework's own polling never runs, not even then."""
    guard = RefusePolling(spec, importing=True)
    with intercepting(guard):
        try:
            return import_target(spec)
        except _Unwind:
            raise guard._error() from None
        except ConfigError:
            if guard.error is not None:  # the module's code failed while tgrunner unwound it
                raise guard.error from None
            raise
