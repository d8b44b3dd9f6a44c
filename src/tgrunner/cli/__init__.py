"""The ``tgrunner`` command line, one module per command.

- ``tgrunner run module:attr`` runs a bot (a Router, an ``async fn(update, bot)``, an aiogram
  Dispatcher, a PTB Application, or a factory) — :mod:`.run`.
- ``tgrunner journal list|retry|drop`` inspects and releases quarantined updates —
  :mod:`.journal`.
- ``tgrunner chat module:attr`` talks to a bot in the terminal, offline, against an embedded
  FakeTelegram — :mod:`.chat`.
- ``tgrunner demo`` runs an example bot against an embedded FakeTelegram — :mod:`.demo`.
- ``tgrunner fake-telegram`` serves FakeTelegram on loopback.

Errors a user can fix end with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from tgrunner.cli import chat as chat_cmd
from tgrunner.cli import journal as journal_cmd
from tgrunner.cli import run as run_cmd
from tgrunner.errors import ConfigError, TgrunnerError

__all__ = ["main"]

# Commands that never need tgrunner.testing: their parser is built without importing it.
_LEAN = {"run", "journal"}


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
        "--no-journal",
        action="store_true",
        help="run the bot with strict offsets instead of the intake journal",
    )
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tgrunner.cli.demo import run_demo

    return run_demo(
        chats=args.chats,
        updates=args.updates,
        latency_ms=args.latency,
        rate=args.rate,
        journal=not args.no_journal,
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line instead of the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = _Parser(prog="tgrunner", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd.add_parser(sub)
    journal_cmd.add_parser(sub)
    _add_demo(sub)
    chat_cmd.add_parser(sub)
    if command in _LEAN:
        # Listed for --help only; importing FakeTelegram costs a run ~0.3 s of start-up.
        sub.add_parser("fake-telegram", help="serve FakeTelegram, a fake Bot API server")
    else:
        from tgrunner.testing.fake import cli as fake_cli

        fake_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tgrunner`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(_command(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"tgrunner: {exc}", file=sys.stderr)
        return 2
    except TgrunnerError as exc:
        print(f"tgrunner: stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a failure of the runtime itself: one line, not a traceback
        logging.getLogger("tgrunner").debug("the runtime failed", exc_info=exc)
        print(f"tgrunner: stopped after a failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
