"""When to stop, and how fast: signals and ``stop()`` calls, recorded for the runtime to act on.

- The first SIGINT/SIGTERM (or ``stop()``) asks for a clean stop: stop fetching, let in-flight
  work finish within the grace period, confirm, exit 0.
- The second (or ``stop(fast=True)``) asks for a fast one: cancel what runs, confirm only what
  finished, exit 1.
- The third exits the process at once (``os._exit(1)``), for a stop that itself hangs.

SIGHUP asks for the worker processes to be replaced (new bot code loaded): it sets
``reload``, for the runtime to act on; it never stops anything.

Signal handlers only record the signal; the runtime's ``serve()`` acts on it. ``request_stop``
is safe to call from any thread, before or while the runtime serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from typing import Any

__all__ = ["StopControl"]

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HANGUP = getattr(signal, "SIGHUP", None)  # not on Windows


class StopControl:
    """The stop requests of one runtime: ``requested`` and ``fast`` are set as they come;
    ``reload`` on SIGHUP (the runtime clears it when it acted)."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.fast = asyncio.Event()
        self.reload = asyncio.Event()
        self.signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._installed: list[int] = []

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the runtime serves on; later requests from other threads go through it."""
        self._loop = loop
        self._thread = threading.get_ident()

    def request_stop(self, fast: bool = False) -> None:
        """Ask for a clean stop, or a fast one. Safe to call twice, and from any thread."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: nothing runs
                loop.call_soon_threadsafe(self._set, fast)
            return
        self._set(fast)

    async def unless_stopped(self, task: asyncio.Task[Any], *, raise_error: bool = False) -> bool:
        """Wait for ``task`` or a stop request; cancel the task on a stop. True if it finished.

        With ``raise_error`` the task's exception is raised; else it is left in the task.
        """
        stop = asyncio.ensure_future(self.requested.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if task.cancelled():
            return False
        error = task.exception()
        if raise_error and error is not None:
            raise error
        return True

    async def settle(self, starting: asyncio.Future[Any] | None, budget: float) -> bool:
        """After a stop during start-up: did the front-end's start-up (``starting``) run, so
        it must be shut down? A clean stop waits for it up to ``budget`` seconds; a fast one
        cancels it."""
        if starting is None:
            return False
        if not starting.done():
            if self.fast.is_set():
                starting.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(budget):
                    await asyncio.wait([starting])
            if not starting.done():
                starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        # A start-up that raised has cleaned up after itself (the front-ends do).
        return starting.cancelled() or starting.exception() is None

    def _set(self, fast: bool) -> None:
        self.requested.set()
        if fast:
            self.fast.set()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Handle SIGINT, SIGTERM and SIGHUP on ``loop`` (where the platform and thread allow
        it)."""
        for sig in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)
        if _HANGUP is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(_HANGUP, self._on_hangup)
                self._installed.append(_HANGUP)

    def uninstall(self) -> None:
        """Give the signals back. Safe to call twice."""
        loop = self._loop
        installed, self._installed = self._installed, []
        if loop is None or loop.is_closed():
            return
        for sig in installed:
            loop.remove_signal_handler(sig)

    def _on_hangup(self) -> None:
        log.info("received SIGHUP")
        self.reload.set()

    def _on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals >= 3:
            log.error("received %s a third time; exiting now", name)
            logging.shutdown()
            os._exit(1)
        log.info("received %s, %s", name, "stopping" if self.signals == 1 else "stopping fast")
        self._set(fast=self.signals > 1)
