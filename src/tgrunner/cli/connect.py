"""What the commands that call the Bot API themselves share (``set-webhook``,
``delete-webhook``, ``webhook-info``, ``doctor``): the ``--token``, ``--api-url`` and
``--timeout`` options, the :class:`~tgrunner.client.bot.Bot` they give, and one line saying
why a call failed.

The token and the server are found as ``tgrunner run`` finds them: the flag, else
``TGRUNNER_TOKEN``/``BOT_TOKEN`` (``TGRUNNER_API_URL``), else nothing (``api.telegram.org``).
A proxy is ``TGRUNNER_PROXY``, else the environment's (``HTTPS_PROXY``, ``ALL_PROXY``, minus
``NO_PROXY``).
"""

from __future__ import annotations

import argparse
import os

from tgrunner.cli.common import checked, number
from tgrunner.client.bot import DEFAULT_API_URL, Bot, check_api_url
from tgrunner.errors import (
    ConfigError,
    NetworkError,
    TelegramError,
    TgrunnerError,
    Unauthorized,
    UnexpectedAnswer,
)

__all__ = [
    "ENVIRONMENT",
    "add_bot_options",
    "api_url_from",
    "bot_from",
    "failure",
    "token_from",
]

ENVIRONMENT = """\
environment:
  TGRUNNER_TOKEN, BOT_TOKEN   the bot token, when --token is not given; prefer them to
                              --token, which other users of the machine see in 'ps'
  TGRUNNER_API_URL            the Bot API server, when --api-url is not given
  TGRUNNER_PROXY              an http(s) proxy to reach it through (default: $HTTPS_PROXY
                              or $ALL_PROXY, minus $NO_PROXY; none when unset)
  TGRUNNER_LOG_LEVEL          debug, info (default), warning or error
"""
"""The environment section of these commands' --help."""

_GET_A_TOKEN = "copy the bot's token from @BotFather (/mybots, then 'API Token')"


def add_bot_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--token``, ``--api-url`` and ``--timeout`` (default 10 s) in a group "the bot"."""
    group = parser.add_argument_group("the bot")
    group.add_argument("--token", help="bot token (default: $TGRUNNER_TOKEN, else $BOT_TOKEN)")
    group.add_argument(
        "--api-url",
        type=checked(check_api_url, quote=False),
        metavar="URL",
        help="Bot API server's root URL: a self-hosted one, or FakeTelegram's (default: "
        "$TGRUNNER_API_URL, else https://api.telegram.org)",
    )
    group.add_argument(
        "--timeout",
        type=number(float, low=0, strict=True),
        default=10.0,
        metavar="SECONDS",
        help="seconds to wait for each answer of the Bot API (default 10)",
    )


def token_from(args: argparse.Namespace) -> str:
    """``--token``, else ``$TGRUNNER_TOKEN``, else ``$BOT_TOKEN``; ConfigError when none."""
    token = args.token or os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    if not token:
        raise ConfigError(
            f"No bot token: set BOT_TOKEN (or TGRUNNER_TOKEN), or pass --token; {_GET_A_TOKEN}."
        )
    return token.strip()


def api_url_from(args: argparse.Namespace) -> str:
    """``--api-url``, else ``$TGRUNNER_API_URL`` (checked), else ``https://api.telegram.org``."""
    if args.api_url is not None:
        return str(args.api_url)
    raw = os.environ.get("TGRUNNER_API_URL", "").strip()
    if not raw:
        return DEFAULT_API_URL
    try:
        return check_api_url(raw)
    except ValueError as exc:
        raise ConfigError(f"TGRUNNER_API_URL (the variable of --api-url): {exc}") from None


def bot_from(args: argparse.Namespace) -> Bot:
    """The Bot these options name, with ``$TGRUNNER_PROXY`` when set; ConfigError (a usage
    error) for a missing or malformed token or API URL. Close it when done."""
    proxy = os.environ.get("TGRUNNER_PROXY", "").strip() or None
    return Bot(token_from(args), api_url=api_url_from(args), timeout=args.timeout, proxy=proxy)


def failure(exc: TgrunnerError) -> str:
    """One line on a failed Bot API call: what Telegram said, or why it could not be reached,
    and what to do about it."""
    if isinstance(exc, Unauthorized):
        return (
            "Telegram refuses the bot token (401 Unauthorized): it is wrong or was revoked; "
            f"{_GET_A_TOKEN}."
        )
    if isinstance(exc, TelegramError):
        return f"{exc.method} failed: {exc.error_code} {exc.description}"
    if isinstance(exc, UnexpectedAnswer):  # its message already says what to check
        return str(exc)
    if isinstance(exc, NetworkError):
        return f"{exc}; check --api-url, the network and any proxy"
    return str(exc)
