"""``tgrunner run module:attr``: run a bot until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import TYPE_CHECKING, Any

from tgrunner.cli.common import checked
from tgrunner.cli.options import add_setting_options, settings_from
from tgrunner.client.bot import check_api_url
from tgrunner.errors import ConfigError

if TYPE_CHECKING:
    from tgrunner.runtime.entry import EntryPoint
    from tgrunner.runtime.runner import Runner
    from tgrunner.settings import Settings

__all__ = ["add_parser"]

# Allocations between collections of the youngest generation (CPython's default is 700).
_GC_GEN0 = 10_000

DESCRIPTION = """\
Run a bot until SIGINT or SIGTERM (Ctrl-C): a clean stop finishes what runs, confirms it and
exits 0; a second signal stops at once.

TARGET is 'module:attribute', imported from the current folder: a tgrunner Router, an
'async def handler(update, bot)', an aiogram Dispatcher, a python-telegram-bot Application,
or a function without arguments that returns one of them.

Updates of one chat are handled one at a time, in order; other chats run concurrently. Each
update is written to the intake journal before Telegram is told it arrived, so none is lost
to a crash; what had not finished is handled again at the next start.
"""

EPILOG = """\
environment:
  TGRUNNER_TOKEN, BOT_TOKEN   the bot token, when --token is not given; prefer them to
                              --token, which other users of the machine see in 'ps'
  TGRUNNER_API_URL            the Bot API server, when --api-url is not given
  TGRUNNER_LOG_LEVEL          debug, info (default), warning or error
  TGRUNNER_*                  each option above names its variable; an option given on
                              the command line wins over its variable. Any other
                              TGRUNNER_* variable is refused, so a typo cannot go unseen.
  HTTPS_PROXY, ALL_PROXY, NO_PROXY
                              the proxy, when neither --proxy nor TGRUNNER_PROXY is set

examples:
  BOT_TOKEN=123456:ABC... tgrunner run mybot:router
  tgrunner run mybot:dp --concurrency 100 --handler-timeout 30
  tgrunner run mybot:application --no-journal --allowed-updates message,callback_query
  tgrunner run mybot:router -v          (debug logs: each fetch, backoff and replay)
  tgrunner run mybot:dp --workers auto  (every core; kill -HUP reloads the bot's code)

  Offline, against FakeTelegram (it prints its URL and a token):
  tgrunner fake-telegram --port 8081 &
  BOT_TOKEN=<the token it prints> tgrunner run mybot:router --api-url http://127.0.0.1:8081
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``run`` command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run a bot from an import string (module:attr)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("target", metavar="TARGET", help="the bot: 'module:attr' (see above)")
    bot = p.add_argument_group("the bot")
    bot.add_argument(
        "--token", help="bot token (default: $TGRUNNER_TOKEN, else $BOT_TOKEN, else the bot's own)"
    )
    bot.add_argument(
        "--api-url",
        type=checked(check_api_url, quote=False),
        metavar="URL",
        help="Bot API server's root URL: a self-hosted one, or FakeTelegram's (default: "
        "$TGRUNNER_API_URL, else the aiogram or PTB bot's own, else https://api.telegram.org)",
    )
    bot.add_argument(
        "--own-http",
        action="store_true",
        help="aiogram and PTB bots: keep the framework's own HTTP client instead of "
        "tgrunner's faster one (default: tgrunner's)",
    )
    add_setting_options(p)
    _add_target_options(p)
    p.set_defaults(func=_cmd_run)
    return p


def _add_target_options(p: argparse.ArgumentParser) -> None:
    from tgrunner.runtime.targets import HELP

    group = p.add_argument_group("what TARGET may be", HELP)
    group.add_argument(
        "--factory",
        action="store_true",
        help="call TARGET (sync or async, no arguments) and run the bot it returns, as "
        "uvicorn's --factory (default: off; see the rules above)",
    )


def _api_url_from(args: argparse.Namespace) -> str | None:
    if args.api_url is not None:
        return str(args.api_url)
    raw = os.environ.get("TGRUNNER_API_URL", "").strip()
    if not raw:
        return None
    try:
        return check_api_url(raw)
    except ValueError as exc:
        raise ConfigError(f"TGRUNNER_API_URL (the variable of --api-url): {exc}") from None


def _cmd_run(args: argparse.Namespace) -> int:
    # Everything the command line and the environment say is checked before the bot is
    # imported: a bad option fails at once, whatever the bot's module does on import.
    settings = settings_from(args)
    api_url = _api_url_from(args)
    token = args.token or os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    if token and not os.environ.get("BOT_TOKEN"):
        # Before the user's module is imported: a module-level Bot(token=os.getenv("BOT_TOKEN"))
        # then gets the token given on the command line.
        os.environ["BOT_TOKEN"] = token

    from tgrunner.errors import UserCodeError
    from tgrunner.runtime.build import build_launcher

    own: dict[str, Any] = {"session": "aiogram", "request": "ptb"} if args.own_http else {}
    try:
        runner = build_launcher(
            args.target,
            token=token,
            api_url=api_url,
            settings=settings,
            factory=args.factory,
            **own,
        )
        return _run(runner, settings)
    except UserCodeError as exc:
        sys.stderr.write(exc.traceback)
        raise


def _run(runner: Runner | EntryPoint, settings: Settings) -> int:
    settle_heap(settings)
    return runner.run()


def settle_heap(settings: Settings) -> None:
    """Import what ``settings`` will need, then move the heap out of the collector's sight.

    The process is ours: everything imported and built so far lives as long as it, so it is
    frozen (``gc.freeze``), and the youngest generation is collected less often, so a backlog
    of thousands of queued updates is not traversed again and again. Metrics are imported
    first: imported when the runner opens them, prometheus_client's ~35,000 objects would be
    traversed by every full collection for as long as the bot runs.
    """
    if settings.metrics is not None:
        from tgrunner.observability._families import require_prometheus

        require_prometheus()  # a ConfigError without it, before the bot starts

    gc.freeze()
    gc.set_threshold(_GC_GEN0, *gc.get_threshold()[1:])
