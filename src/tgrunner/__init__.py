"""tgrunner: run Telegram bots at scale, with per-chat order and no lost update.

::

    import tgrunner

    router = tgrunner.Router()

    @router.message()
    async def echo(ctx: tgrunner.Context) -> None:
        await ctx.reply(ctx.text or "")

    tgrunner.run(router, token="123:ABC...")

or, with every core (worker processes load the bot from its import string)::

    tgrunner.run("mybot:router", workers="auto")
"""

from tgrunner import errors
from tgrunner._version import __version__
from tgrunner.client.bot import Bot, InputFile
from tgrunner.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    NetworkError,
    NotFound,
    RetryAfter,
    SchedulerFull,
    ServerError,
    TelegramError,
    TgrunnerError,
    TimedOut,
    Unauthorized,
)
from tgrunner.frontends.native.router import Context, Router
from tgrunner.keys import chat_and_user_keys, default_keys
from tgrunner.runtime.launch import run
from tgrunner.runtime.runner import Runner, RunnerStats
from tgrunner.scheduler import Scheduler, SchedulerOptions
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions

__all__ = [
    "BadRequest",
    "Bot",
    "ConfigError",
    "Conflict",
    "Context",
    "Forbidden",
    "InputFile",
    "NetworkError",
    "NotFound",
    "PollingOptions",
    "RetryAfter",
    "Router",
    "Runner",
    "RunnerStats",
    "Scheduler",
    "SchedulerFull",
    "SchedulerOptions",
    "ServerError",
    "Settings",
    "TelegramError",
    "TgrunnerError",
    "TimedOut",
    "Unauthorized",
    "__version__",
    "chat_and_user_keys",
    "default_keys",
    "errors",
    "run",
]
