"""The ``tgrunner`` command line.

- ``tgrunner run module:attr`` runs a bot (a Router, an ``async fn(update, bot)``, or a factory).
- ``tgrunner demo`` runs an example bot against an embedded FakeTelegram with simulated users.
- ``tgrunner fake-telegram`` serves FakeTelegram on loopback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from tgrunner.errors import ConfigError

__all__ = ["main"]


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a bot from an import string (module:attr)")
    p.add_argument("target", help="the bot: 'module:attr' or 'module:factory'")
    p.add_argument("--token", help="bot token (default: $TGRUNNER_TOKEN or $BOT_TOKEN)")
    p.add_argument(
        "--api-url",
        default=os.environ.get("TGRUNNER_API_URL"),
        help="Bot API server (a self-hosted one, or FakeTelegram); default $TGRUNNER_API_URL, "
        "else the framework bot's own, else https://api.telegram.org",
    )
    p.add_argument("--concurrency", type=int, help="handlers running at once (default 500)")
    p.add_argument("--handler-timeout", type=float, help="seconds per handler (default none)")
    p.add_argument("--grace", type=float, help="seconds to finish in-flight work on stop (10)")
    p.add_argument(
        "--journal",
        help="SQLite intake journal path: confirm updates once journaled, not once finished "
        "(more in flight; unfinished ones replay on restart). Default: strict offsets",
    )
    p.add_argument(
        "--proxy",
        metavar="URL",
        help="send every Bot API call through this http(s) proxy (on the aiohttp transport); "
        "default $TGRUNNER_PROXY, else $HTTPS_PROXY / $ALL_PROXY minus $NO_PROXY",
    )
    p.add_argument(
        "--transport",
        choices=("fast", "aiohttp"),
        help="HTTP transport of the Bot API client (default fast; aiohttp whenever a proxy is set)",
    )
    p.add_argument(
        "--own-http",
        action="store_true",
        help="aiogram and PTB bots: keep the framework's own HTTP client instead of "
        "tgrunner's faster one",
    )
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tgrunner.runtime.build import build_runner
    from tgrunner.settings import Settings

    token = args.token or os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    settings = Settings.from_env()
    sched = settings.scheduler
    if args.concurrency is not None:
        sched = replace(sched, concurrency=args.concurrency)
    if args.handler_timeout is not None:
        sched = replace(sched, handler_timeout=args.handler_timeout)
    settings = replace(settings, scheduler=sched)
    if args.journal:
        settings = replace(settings, polling=replace(settings.polling, journal=args.journal))
    if args.grace is not None:
        settings = replace(settings, grace=args.grace)
    if args.proxy is not None or args.transport is not None:
        client = settings.client
        client = replace(
            client,
            proxy=args.proxy if args.proxy is not None else client.proxy,
            transport=args.transport or client.transport,
        )
        settings = replace(settings, client=client)
    own = {"session": "aiogram", "request": "ptb"} if args.own_http else {}
    runner = build_runner(args.target, token=token, api_url=args.api_url, settings=settings, **own)
    return runner.run()


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run an example bot against an embedded FakeTelegram")
    p.add_argument("--chats", type=int, default=1000, help="simulated chats (default 1000)")
    p.add_argument("--updates", type=int, default=20000, help="messages to send (20000)")
    p.add_argument("--latency", type=float, default=0.0, help="API latency in ms (default 0)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="updates per second offered (default 0: all at once)",
    )
    p.add_argument(
        "--journal",
        action="store_true",
        help="run the bot with an intake journal (in a temporary folder)",
    )
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tgrunner.cli.demo import run_demo

    return run_demo(
        chats=args.chats,
        updates=args.updates,
        latency_ms=args.latency,
        rate=args.rate,
        journal=args.journal,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgrunner", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_demo(sub)
    from tgrunner.testing.fake import cli as fake_cli

    fake_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tgrunner`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"tgrunner: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
