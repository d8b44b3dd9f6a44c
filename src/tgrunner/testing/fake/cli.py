"""``tgrunner fake-telegram``: serve FakeTelegram on loopback until SIGINT or SIGTERM.

It writes two lines to standard output, then serves::

    API URL: http://127.0.0.1:8081
    Token: 7654615998:AAF...

Point a bot at the URL (``--api-url`` of ``tgrunner run``, ``base_url`` of aiogram or PTB) with
that token. ``python -m tgrunner.testing.fake.cli`` runs the same command on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from tgrunner.testing.fake.server import FakeTelegram

__all__ = ["add_parser", "main", "run"]

log = logging.getLogger(__name__)


DESCRIPTION = """\
Serve FakeTelegram, a fake Bot API server, until SIGINT or SIGTERM (Ctrl-C). It writes two
lines to standard output, then serves:

  API URL: http://127.0.0.1:8081
  Token: 7654615998:AAF...

Point a bot at that URL with that token: --api-url of 'tgrunner run', base_url of aiogram
or python-telegram-bot.
"""

EPILOG = """\
environment:
  TGRUNNER_LOG_LEVEL   debug, info (default), warning or error

examples:
  tgrunner fake-telegram
  tgrunner fake-telegram --port 0 --seed 7     (any free port; another bot and token)
"""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to 65535 (0: any)")
    return port


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8081, help="port to bind, 0 for any free one (default 8081)"
    )
    parser.add_argument("--token", help="the bot's token (default: generated from --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of ids and tokens (default 0)")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``fake-telegram`` command to a ``tgrunner`` argument parser."""
    parser = subparsers.add_parser(
        "fake-telegram",
        help="serve FakeTelegram, a fake Bot API server, on loopback",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    _arguments(parser)
    parser.set_defaults(func=run)
    return parser


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # The handler only records the signal; the main coroutine acts on it.
        loop.add_signal_handler(sig, stop.set)
    tg = FakeTelegram(host=args.host, port=args.port, token=args.token, seed=args.seed, record=0)
    async with tg:
        sys.stdout.write(f"API URL: {tg.api_url}\nToken: {tg.token}\n")
        sys.stdout.flush()
        await stop.wait()
    log.info("FakeTelegram stopped")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code (0 after a signal)."""
    if args.token is not None and ":" not in args.token:
        sys.stderr.write("tgrunner fake-telegram: --token must look like <bot id>:<secret>\n")
        return 2
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        sys.stderr.write(
            f"tgrunner fake-telegram: cannot serve on {args.host}:{args.port}: {exc}\n"
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tgrunner.testing.fake.cli``."""
    parser = argparse.ArgumentParser(
        prog="fake-telegram",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
