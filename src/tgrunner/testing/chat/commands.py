"""The terminal chat's input: a typed line becomes a :class:`Command` (pure, no I/O).

A line is a message to the bot, except the chat commands of :data:`COMMANDS` (``/press 1``,
``/as Bob``…). Every other line that starts with ``/`` goes to the bot as a bot command
(``/start``, ``/help``). ``//text`` sends ``/text`` as is, for a bot command that has the name
of a chat command (``//press`` sends ``/press``). Chat commands are matched case-insensitively.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "CommandError", "help_lines", "parse"]

COMMANDS: dict[str, tuple[str, str]] = {
    "press": ("N", "press button N of the bot's latest keyboard in this chat"),
    "as": ("NAME", "talk as the user NAME (created on first use), in the same kind of chat"),
    "group": ("NAME", "talk in the group NAME (created with you and the bot on first use)"),
    "private": ("", "back to your private chat with the bot"),
    "photo": ("[CAPTION]", "send a photo"),
    "document": ("[FILE NAME]", "send a file (default report.pdf)"),
    "sticker": ("[EMOJI]", "send a sticker (default 👍)"),
    "location": ("[LAT LON]", "send a location (default 51.5007 -0.1246)"),
    "edit": ("TEXT", "edit your last message in this chat"),
    "quit": ("", "stop the bot and leave (also Ctrl-D, Ctrl-C)"),
    "?": ("", "list these commands"),
}
"""The chat commands: name -> (arguments, what it does)."""


class CommandError(ValueError):
    """A chat command with bad arguments; the message says what to type instead."""


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed line.

    ``name`` is ``"say"`` (send ``text`` to the bot) or a chat command's name. ``text``: the
    message, caption, user or group name, file name or emoji (default ``""``); ``number``:
    the button of ``/press`` (from 1; default 0); ``point``: ``/location``'s latitude and
    longitude (default None: the default place).
    """

    name: str
    text: str = ""
    number: int = 0
    point: tuple[float, float] | None = None


def help_lines() -> list[str]:
    """The chat commands, one per line, for the banner and ``/?``."""
    lines = []
    for name, (args, what) in COMMANDS.items():
        usage = f"/{name} {args}".rstrip()
        lines.append(f"  {usage:<22} {what}")
    lines.append(f"  {'//TEXT':<22} send /TEXT to the bot (e.g. //press)")
    return lines


def _number(name: str, arg: str) -> int:
    if not arg.isdigit() or int(arg) < 1:
        raise CommandError(f"/{name} takes a button number from 1, e.g. /{name} 1")
    return int(arg)


def _point(arg: str) -> tuple[float, float] | None:
    if not arg:
        return None
    parts = arg.replace(",", " ").split()
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise CommandError(
            "/location takes a latitude and a longitude, e.g. /location 48.8584 2.2945"
        ) from None
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        raise CommandError("/location: the latitude is -90 to 90, the longitude -180 to 180")
    return lat, lon


def parse(line: str) -> Command | None:
    """The command a typed line means; None for a blank line.

    Raises :class:`CommandError` for a chat command with missing or bad arguments.
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if line.startswith("//"):
        return Command("say", line[1:])
    if not line.startswith("/"):
        return Command("say", line)
    word, _, rest = line[1:].partition(" ")
    name = word.lower()
    if name not in COMMANDS:
        return Command("say", line)
    arg = rest.strip()
    if name == "press":
        return Command(name, number=_number(name, arg))
    if name == "location":
        return Command(name, point=_point(arg))
    if name in ("as", "group", "edit") and not arg:
        what = COMMANDS[name][0]
        raise CommandError(f"/{name} needs {what}, e.g. /{name} {_EXAMPLES[name]}")
    return Command(name, arg)


_EXAMPLES = {"as": "Bob", "group": "Friends", "edit": "new text"}
