"""tgrunner: run Telegram bots at scale, with per-chat order and no lost update."""

from tgrunner import errors
from tgrunner.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    NetworkError,
    NotFound,
    RetryAfter,
    ServerError,
    TelegramError,
    TgrunnerError,
    TimedOut,
    Unauthorized,
)

__version__ = "0.1.0"

__all__ = [
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "NetworkError",
    "NotFound",
    "RetryAfter",
    "ServerError",
    "TelegramError",
    "TgrunnerError",
    "TimedOut",
    "Unauthorized",
    "__version__",
    "errors",
]
