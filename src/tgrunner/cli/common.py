"""What every command shares: one-line usage errors, help that keeps its layout, the logging
options (accepted before and after the command's name), and argument types that check
values as they are parsed."""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from tgrunner.errors import ConfigError

__all__ = [
    "LEVELS",
    "HelpFormatter",
    "Parser",
    "add_log_options",
    "bot_file",
    "bot_id_arg",
    "checked",
    "log_level",
    "number",
    "subcommands",
]

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
"""The values of ``--log-level`` and ``TGRUNNER_LOG_LEVEL``; ``-v`` and ``-q`` step along
them from ``info``."""

_SUB = "sub_"  # the logging options after a command's name go to their own dests


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line instead of the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (lists, examples); option help wrapped, in a wider
    column than argparse's default."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def add_log_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--log-level``, ``-v`` and ``-q``: on the top-level parser (``top``), or after a
    command's name (where they win over the ones before it)."""
    prefix = "" if top else _SUB
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        dest=prefix + "log_level",
        type=str.lower,
        choices=tuple(LEVELS),
        help="how much to log (default info; env TGRUNNER_LOG_LEVEL)",
        **unset,
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest=prefix + "verbose",
        action="count",
        help="log more: debug, with each fetch, backoff and replay (default: info)",
        **({"default": 0} if top else unset),
    )
    group.add_argument(
        "-q",
        "--quiet",
        dest=prefix + "quiet",
        action="count",
        help="log less: warnings only, -qq errors only (default: info)",
        **({"default": 0} if top else unset),
    )


def subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of ``parser``'s commands, and of theirs, all the way down."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found.append(child)
                found.extend(subcommands(child))
    return found


def log_level(args: argparse.Namespace) -> int:
    """The logging level the command line asks for: ``--log-level`` (the one after the
    command's name first), else ``-v``/``-q``, else ``TGRUNNER_LOG_LEVEL``, else INFO."""
    named = getattr(args, _SUB + "log_level", None) or getattr(args, "log_level", None)
    if named is not None:
        return LEVELS[named]
    steps = (
        getattr(args, "verbose", 0)
        + getattr(args, _SUB + "verbose", 0)
        - getattr(args, "quiet", 0)
        - getattr(args, _SUB + "quiet", 0)
    )
    if steps:
        order = list(LEVELS.values())
        return order[min(max(order.index(logging.INFO) - steps, 0), len(order) - 1)]
    raw = os.environ.get("TGRUNNER_LOG_LEVEL", "").strip()
    if not raw:
        return logging.INFO
    if raw.lower() not in LEVELS:
        raise ConfigError(
            f"TGRUNNER_LOG_LEVEL={raw!r} (the variable of --log-level) must be one of: "
            f"{', '.join(LEVELS)}"
        )
    return LEVELS[raw.lower()]


def checked(parse: Callable[[str], Any], *, quote: bool = True) -> Callable[[str], Any]:
    """An argparse ``type`` from a parser that raises ValueError with a message saying what
    the value must be; argparse shows it after the option's name, after the value itself
    (unless not ``quote``: the message names it)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} {exc}" if quote else str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def number(kind: Callable[[str], float], *, low: float, strict: bool = False) -> Any:
    """An argparse ``type`` for a whole (``kind=int``) or real number of at least ``low``
    (above it, with ``strict``)."""
    whole = kind is int

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (strict and value == low):
            what = "a whole number" if whole else "a number"
            bound = f"more than {low:g}" if strict else f"at least {low:g}"
            raise ValueError(f"must be {what}, {bound}")
        return value

    return checked(parse)


def bot_id_arg(text: str) -> int:
    """An argparse type: a bot id, the digits before ``:`` of its token."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a bot id (the digits before ':')")
    return int(text)


def bot_file(
    args: argparse.Namespace, name: str, what: str, *, whats: str | None = None, also: str = ""
) -> Path:
    """The file ``name`` in a bot's folder of the data dir (``--data-dir``, else
    ``$TGRUNNER_DATA_DIR``, else ``./.tgrunner``): the bot named by ``--bot-id``, else by the
    token (``--token``, ``$TGRUNNER_TOKEN``, ``$BOT_TOKEN``), else the only bot there with
    such a file. ConfigError, naming ``what`` the file is (``whats``: its plural, default
    ``what``), when there is none; ``also`` names another option that would do (" or
    --journal")."""
    from tgrunner.intake.options import DEFAULT_DATA_DIR

    raw = getattr(args, "data_dir", None) or os.environ.get("TGRUNNER_DATA_DIR")
    root = Path(raw or DEFAULT_DATA_DIR)
    token = getattr(args, "token", None) or os.environ.get("TGRUNNER_TOKEN")
    token = token or os.environ.get("BOT_TOKEN")
    bot_id = getattr(args, "bot_id", None)
    if bot_id is None and token:
        head = token.partition(":")[0].strip()
        if not head.isdigit():
            raise ConfigError("The token is not in Telegram's format '<bot id>:<secret>'.")
        bot_id = int(head)
    if bot_id is None:
        found = sorted(p.parent.name for p in root.glob(f"*/{name}"))
        if len(found) != 1:
            raise ConfigError(
                f"{root} holds the {whats or what} of {len(found)} bots "
                f"({', '.join(found) or 'none'}); name one with --bot-id or --token, or pass "
                f"--data-dir{also}."
            )
        bot_id = int(found[0])
    path = root / str(bot_id) / name
    if not path.is_file():
        raise ConfigError(f"Bot {bot_id} has no {what} in {root}; check --data-dir and --bot-id.")
    return path
