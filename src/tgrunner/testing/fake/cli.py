"""``tgrunner fake-telegram``: serve FakeTelegram until SIGINT or SIGTERM.

It writes three lines to standard output (a fourth, ``Control secret: ...``, when the control
API needs one), then serves::

    API URL: http://127.0.0.1:8081
    Token: 7654615998:AAF...
    Control API: http://127.0.0.1:8081/control

Point a bot at the URL (``--api-url`` of ``tgrunner run``, ``base_url`` of aiogram or PTB) with
that token, and play its users through the control API (:mod:`.control`).
``python -m tgrunner.testing.fake.cli`` runs the same command on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from tgrunner.testing.fake.control import MAX_PRESS_WAIT, MAX_WAIT, SECRET_HEADER
from tgrunner.testing.fake.server import FakeTelegram
from tgrunner.testing.fake.webhook import WebhookRetry

__all__ = ["add_parser", "main", "run"]

log = logging.getLogger(__name__)

SECRET_ENV = "TGRUNNER_CONTROL_SECRET"

_SUMMARY = "serve FakeTelegram, a fake Bot API server, with a JSON control API"

_DESCRIPTION = f"""\
Serve FakeTelegram, a fake Telegram Bot API server, until SIGINT or SIGTERM.

A bot run with 'tgrunner run TARGET --api-url URL' and the printed token talks to it as it
would to Telegram. The same port serves a JSON control API under /control: through it a
person or a script in any language plays the bot's users. It creates users and groups, sends
messages, presses inline buttons and reads the bot's replies.

At start it prints (then serves):
  API URL: http://127.0.0.1:8081
  Token: 7654615998:AA...
  Control API: http://127.0.0.1:8081/control

Control API: POST bodies are JSON objects; answers are {{"ok": true, "result": ...}}, errors
{{"ok": false, "error_code": 4xx, "description": ...}}. USER is a user id or a username.
  GET  /control                  the endpoints, the bot and its token
  GET  /control/users            the users
  POST /control/users            {{"first_name", "last_name"?, "username"?, "language_code"?}}
                                 -> {{"id", "chat_id", "user"}}: a user and their chat
  GET  /control/chats            the chats
  POST /control/groups           {{"title", "members"?: [USER], "type"?: "group"|"supergroup"}}
  POST /control/send             {{"user", "text" | "photo": true, "caption"?, "chat_id"?,
                                 "reply_to"?}} -> {{"message", "cursor"}}; "/start" is sent as
                                 a command; chat_id defaults to the user's chat with the bot
  POST /control/edit             {{"user", "message_id", "text", "chat_id"?}}
  POST /control/press            {{"user", "message_id", "button": INDEX | "data" | "text",
                                 "chat_id"?, "wait"?}} -> {{"callback_query_id", "answered",
                                 "answer", "cursor"}}; waits up to wait seconds (default 2,
                                 at most {MAX_PRESS_WAIT:g}) for the bot's answerCallbackQuery
  GET  /control/chats/CHAT_ID/replies?after=CURSOR&wait=SECONDS
                                 the bot's messages in the chat, each with its seq, text,
                                 buttons and the Message; an edit or a deletion gives a message
                                 a new seq. Only those after CURSOR (default 0: all); with wait
                                 (at most {MAX_WAIT:g} s, default 0) it returns as soon as one
                                 arrives. send, edit and press return the cursor to pass.

Security: on a loopback --host (the default) the control API needs no secret. On any other
host every control request needs the header {SECRET_HEADER}: the value of --control-secret,
or a random one printed at start. The Bot API itself is open to anyone who has the token.

environment:
  {SECRET_ENV}   the control secret, as --control-secret
  TGRUNNER_LOG_LEVEL        debug, info (default), warning or error
"""

_EPILOG = f"""\
examples:
  tgrunner fake-telegram --port 8081
  export BOT_TOKEN=7654615998:AA...           # the printed token
  tgrunner run mybot:router --api-url http://127.0.0.1:8081 --no-journal
  curl -s localhost:8081/control/users -d '{{"first_name": "Alice", "username": "alice"}}'
  curl -s localhost:8081/control/send -d '{{"user": "alice", "text": "/start"}}'
  curl -s 'localhost:8081/control/chats/CHAT_ID/replies?after=0&wait=10'
  curl -s localhost:8081/control/press -d '{{"user": "alice", "message_id": 2, "button": 0}}'
  TGRUNNER_CONTROL_SECRET=s3cret tgrunner fake-telegram --host 0.0.0.0
  curl -s -H '{SECRET_HEADER}: s3cret' HOST:8081/control/users
"""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535 (0: any free port), not {port}")
    return port


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=8081, help="port to bind, 0 for any free one (default 8081)"
    )
    parser.add_argument("--token", help="the bot's token (default: generated from --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of ids and tokens (default 0)")
    parser.add_argument(
        "--webhook-pace",
        choices=("fast", "telegram"),
        default="fast",
        help="how webhook delivery retries a failed POST: fast (default: 0.05 s doubling up "
        "to 1 s, for tests) or telegram (2, 4, 8 ... s up to 60 s, as Telegram does)",
    )
    parser.add_argument(
        "--control-secret",
        default=os.environ.get(SECRET_ENV) or None,
        metavar="SECRET",
        help=f"require this {SECRET_HEADER} header on control requests (default: "
        f"${SECRET_ENV}; none on loopback, a random one printed at start on other hosts)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``fake-telegram`` command to a ``tgrunner`` argument parser."""
    parser = subparsers.add_parser(
        "fake-telegram",
        help=_SUMMARY,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(args: argparse.Namespace, secret: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # The handler only records the signal; the main coroutine acts on it.
        loop.add_signal_handler(sig, stop.set)
    tg = FakeTelegram(
        host=args.host,
        port=args.port,
        token=args.token,
        seed=args.seed,
        record=0,
        control_secret=secret,
        webhook_retry=WebhookRetry.telegram() if args.webhook_pace == "telegram" else None,
    )
    async with tg:
        lines = [f"API URL: {tg.api_url}", f"Token: {tg.token}", f"Control API: {tg.control_url}"]
        if secret is not None and args.control_secret is None:
            lines.append(f"Control secret: {secret}")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        await stop.wait()
    log.info("FakeTelegram stopped")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; return the exit code (0 after a signal)."""
    if args.token is not None and ":" not in args.token:
        sys.stderr.write("tgrunner fake-telegram: --token must look like <bot id>:<secret>\n")
        return 2
    secret = args.control_secret
    if secret is None and not _is_loopback(args.host):
        # Off loopback, anyone who reaches the port could play the users: require a secret.
        secret = secrets.token_urlsafe(18)
        log.warning(
            "--host %s is not loopback: control requests need the %s header printed below",
            args.host,
            SECRET_HEADER,
        )
    try:
        asyncio.run(_serve(args, secret))
    except OSError as exc:
        sys.stderr.write(
            f"tgrunner fake-telegram: cannot serve on {args.host}:{args.port}: {exc}\n"
        )
        return 1
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line instead of the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tgrunner.testing.fake.cli``."""
    parser = _Parser(
        prog="fake-telegram",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
