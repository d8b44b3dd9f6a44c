"""The ``tgrunner`` command line: one module per command (or per family of commands, such as
the webhook's three), each with an ``add_parser(sub)`` that adds its commands.

A command is registered by one entry in :data:`_COMMANDS`. Errors a user can fix end with one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import select
import sys
from collections.abc import Sequence

from tgrunner import __version__
from tgrunner.cli.common import HelpFormatter, Parser, add_log_options, log_level, subcommands
from tgrunner.errors import ConfigError, TgrunnerError

__all__ = ["main"]

_COMMANDS: dict[str, str] = {
    "run": "tgrunner.cli.run",
    "worker": "tgrunner.cli.worker",
    "jobs": "tgrunner.cli.jobs",
    "journal": "tgrunner.cli.journal",
    "broadcast": "tgrunner.cli.broadcast",
    "set-webhook": "tgrunner.cli.webhook",
    "delete-webhook": "tgrunner.cli.webhook",
    "webhook-info": "tgrunner.cli.webhook",
    "doctor": "tgrunner.cli.doctor",
    "chat": "tgrunner.cli.chat",
    "demo": "tgrunner.cli.demo",
    "fake-telegram": "tgrunner.testing.fake.cli",
}
"""Each command's module, in --help order; a module that adds several commands is named by
each of them, in the order it adds them."""

# Commands that never need tgrunner.testing: for them only their own module is imported
# (importing FakeTelegram costs a run ~0.3 s of start-up).
_LEAN = {"run", "worker", "jobs", "journal", "broadcast", "doctor", "set-webhook",
         "delete-webhook", "webhook-info"}  # fmt: skip

DESCRIPTION = """\
tgrunner runs Telegram bots, written for tgrunner, aiogram 3 or python-telegram-bot 22,
with per-chat order, no lost update and a clean stop.
"""

EPILOG = """\
Each command has its own --help. The logging options work before and after the command's
name: 'tgrunner -v run mybot:router' and 'tgrunner run mybot:router -v' are the same.

environment:
  TGRUNNER_LOG_LEVEL   debug, info (default), warning or error; --log-level, -v and -q win

examples:
  BOT_TOKEN=123456:ABC... tgrunner run mybot:router
  tgrunner run mybot:dp --job-workers 2     (jobs from task.enqueue run beside the bot)
  tgrunner worker mybot --jobs redis://127.0.0.1:6379/0
  tgrunner jobs                   (jobs per state; tgrunner jobs show|retry|cancel ID)
  tgrunner demo
  tgrunner journal list
  tgrunner broadcast              (broadcasts and their progress; pause|resume|cancel ID)
  tgrunner doctor                 (checks the token, the Bot API latency, the webhook, ...)
  tgrunner fake-telegram --port 8081
"""

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _command(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``: its first word that is neither an option nor the value
    of ``--log-level``."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = Parser(prog="tgrunner", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--version",
        action="version",
        version=f"tgrunner {__version__} (Python {platform.python_version()})",
        help="print the version of tgrunner and Python, and exit",
    )
    add_log_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = [command] if command in _LEAN else list(_COMMANDS)
    for module in dict.fromkeys(_COMMANDS[name] for name in names):
        importlib.import_module(module).add_parser(sub)
    for child in subcommands(parser):
        add_log_options(child, top=False)
    for each in (parser, *subcommands(parser)):
        each.formatter_class = HelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tgrunner`` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(_command(argv)).parse_args(argv)
    try:
        level = log_level(args)
    except ConfigError as exc:
        print(f"tgrunner: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format=_FORMAT)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError as exc:
        if _stdout_gone():
            return 141  # as a shell reports a writer that SIGPIPE ended: `| head` is no failure
        print(f"tgrunner: stopped after a failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
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


def _stdout_gone() -> bool:
    """Whether stdout's reader went away (``tgrunner doctor | head -1``: the pipe's write end
    reports an error); if so, stdout is pointed at /dev/null, so the interpreter's last flush
    at exit does not fail again. A broken pipe elsewhere (a socket) is not this."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return False
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    if not any(events & select.POLLERR for _, events in poll.poll(0)):
        return False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return True


if __name__ == "__main__":
    sys.exit(main())
