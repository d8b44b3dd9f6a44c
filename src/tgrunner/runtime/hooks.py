"""The runner's start-up and shutdown hooks, wrapped around something the bot opens and closes.

::

    startup = opening(queue.open, queue.close, inner=frontend.startup)
    shutdown = closing(queue.close, inner=frontend.shutdown)

The job queue (:mod:`.jobs`) and the state store (:mod:`.state`) are opened before the
front-end's start-up and closed after its shutdown, each with these two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Hook", "closing", "opening"]

Hook = Callable[[], Awaitable[Any]]
"""A start-up or shutdown hook: an async function of no arguments."""


def opening(open_: Hook, close: Hook, inner: Hook | None) -> Hook:
    """A start-up hook: ``open_()``, then ``inner()`` (None: nothing); ``close()`` again when
    ``inner`` fails, before its error goes on."""

    async def start() -> None:
        await open_()
        try:
            if inner is not None:
                await inner()
        except BaseException:
            await close()
            raise

    return start


def closing(close: Hook, inner: Hook | None) -> Hook:
    """A shutdown hook: ``inner()`` (None: nothing), then ``close()``, even when it fails."""

    async def stop() -> None:
        try:
            if inner is not None:
                await inner()
        finally:
            await close()

    return stop
