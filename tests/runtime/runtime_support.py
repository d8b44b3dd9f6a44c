"""Helpers of the runtime tests: a runner against FakeTelegram, an echo handler, and waits on
the runtime's log lines (the events a test can see without reaching into the runtime)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from types import TracebackType
from typing import Any

from servers import free_port
from tgrunner.client.bot import Bot
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions

__all__ = ["FAST", "LogWatch", "echo", "free_port", "make_runner", "serving", "until"]

FAST = PollingOptions(timeout=1, backoff_base=0.01, backoff_cap=0.05)
"""Short long polls and retries, so that a test never waits for the defaults."""


def make_runner(api_url: str, token: str, handler: Any, **kwargs: Any) -> Runner:
    """A runner on ``api_url`` with FAST polling and a 5 s grace unless ``settings`` says."""
    settings = kwargs.pop("settings", None) or Settings(polling=FAST, grace=5.0)
    return Runner(handler, token=token, api_url=api_url, settings=settings, **kwargs)


def serving(runner: Runner) -> asyncio.Task[int]:
    """``runner.serve()`` as a task, without signal handlers (the test process keeps them)."""
    return asyncio.get_running_loop().create_task(runner.serve(install_signals=False))


async def echo(update: dict[str, Any], bot: Bot) -> None:
    """Reply with the message's text."""
    message = update["message"]
    await bot.send_message(message["chat"]["id"], message.get("text") or "")


async def until(event: Awaitable[Any], task: asyncio.Future[Any], timeout: float = 15) -> None:
    """Wait for ``event`` or for ``task`` to end, whichever is first (a runner that fails
    early must not leave the test waiting for an event that never comes)."""
    waiter = asyncio.ensure_future(event)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


class LogWatch(logging.Handler):
    """Counts the ``tgrunner`` log records whose message contains ``text``; ``await
    watch.wait(n)`` returns once ``n`` were seen. Use as a context manager inside the test's
    event loop (records from other threads are handed to it)."""

    def __init__(self, text: str, logger: str = "tgrunner") -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.count = 0
        self.messages: list[str] = []
        self._logger = logging.getLogger(logger)
        self._level = self._logger.level
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> LogWatch:
        self._loop = asyncio.get_running_loop()
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.text not in message or self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._seen, message)

    def _seen(self, message: str) -> None:
        self.count += 1
        self.messages.append(message)
        self._changed.set()

    async def wait(self, n: int = 1, timeout: float = 15) -> None:
        """Return once ``n`` matching records were seen; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while self.count < n:
                self._changed.clear()
                await self._changed.wait()
