"""The inline executor (the default): the front-end's handler runs on this event loop.

It is the shortest path from a ready update to its handler: ``execute`` returns the handler's
own coroutine, so the scheduler turns it into one task with no wrapper frame.

The handlers' :func:`~tgrunner.jobs.offload` pool is theirs too: ``close()`` (the runner's
last step, once every handler and the shutdown hook ended) shuts it down.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.protocols import Update

__all__ = ["InlineExecutor", "UpdateHandler"]

UpdateHandler = Callable[[Update, Bot], Awaitable[Any]]
"""A front-end's handler: ``async fn(update, bot)``."""


class InlineExecutor:
    """Run ``handler(update, bot)`` in this process.

    A handler with a ``set_username`` method (a native :class:`~tgrunner.Router`) is told the
    bot's username at start, so it can refuse commands meant for other bots.
    """

    def __init__(self, handler: UpdateHandler, bot: Bot) -> None:
        self.handler = handler
        self.bot = bot

    async def start(self) -> None:
        """Tell a router the bot's username (``getMe`` is cached by the Bot)."""
        set_username = getattr(self.handler, "set_username", None)
        if set_username is not None:
            set_username((await self.bot.get_me()).get("username"))

    def execute(self, update: Update) -> Awaitable[Any]:
        """The handler's awaitable for this update."""
        return self.handler(update, self.bot)

    async def close(self) -> None:
        """Shut down the offload() pool, if the handlers started one."""
        # No pool can run unless its module was imported: a bot that never offloads pays
        # nothing here, and the executors do not depend on the jobs package.
        offload = sys.modules.get("tgrunner.jobs.offload")
        if offload is not None:
            await offload.shutdown_offload()
