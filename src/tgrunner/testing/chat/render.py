"""What the terminal chat shows of Bot API objects: pure functions from dicts to text.

- :func:`describe` turns a Message into one line of content: its text, or the kind of media
  in brackets with the caption after it (``[photo] a cat``, ``[document report.pdf]``,
  ``[sticker 👍]``, ``[location 51.5, -0.12]``, ``[poll Lunch? (pizza / soup)]``…).
- :func:`keyboard_of` turns a ``reply_markup`` into a :class:`Keyboard`: the lines that show
  it, with pressable buttons numbered from 1 (``[1] Yes  [2] No``), and those buttons in
  number order. URL buttons are shown as links and are not numbered.
- :func:`block` lays out a head and a (possibly multi-line) body, continuation lines aligned
  under the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Button", "Keyboard", "block", "describe", "keyboard_of"]

JSON = dict[str, Any]

# Media kinds whose message has a caption, in the order they are checked: an animation also
# carries a ``document``, so it comes first.
_FILE_KINDS = ("animation", "photo", "video", "video_note", "audio", "voice", "document")


@dataclass(frozen=True, slots=True)
class Button:
    """A pressable button: ``label`` as shown; ``kind`` is ``"callback"`` (an inline button;
    ``value`` is its callback data) or ``"text"`` (a reply-keyboard button; pressing it sends
    ``value``, its label, as a message)."""

    label: str
    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Keyboard:
    """A keyboard as the chat shows it.

    ``kind``: ``"inline"`` (under a message), ``"reply"`` (replaces the user's keyboard) or
    ``"remove"`` (the bot removed its reply keyboard). ``lines``: how it is shown, one line per
    row. ``buttons``: the numbered buttons, button N at index N - 1. ``one_time``: a reply
    keyboard that goes away once used.
    """

    kind: str
    lines: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = field(default=())
    one_time: bool = False


def block(head: str, body: str) -> list[str]:
    """``head`` followed by ``body``; further lines of the body are indented under the first."""
    first, *rest = body.split("\n") if body else [""]
    pad = " " * len(head)
    return [head + first] + [pad + line for line in rest]


def _with_caption(tag: str, message: JSON) -> str:
    caption = message.get("caption")
    return f"{tag} {caption}" if caption else tag


def _file(kind: str, message: JSON) -> str:
    item = message[kind]
    if kind == "photo":
        return "[photo]"
    if kind == "document":
        name = item.get("file_name") if isinstance(item, dict) else None
        return f"[document {name}]" if name else "[document]"
    if kind == "audio":
        title = " – ".join(str(item[k]) for k in ("performer", "title") if item.get(k))
        return f"[audio {title}]" if title else "[audio]"
    if kind in ("voice", "video", "video_note"):
        seconds = item.get("duration") if isinstance(item, dict) else None
        tag = kind.replace("_", " ")
        return f"[{tag} {seconds} s]" if seconds else f"[{tag}]"
    return f"[{kind}]"


def _poll(poll: JSON) -> str:
    options = " / ".join(str(o.get("text", "")) for o in poll.get("options") or ())
    quiz = "quiz" if poll.get("type") == "quiz" else "poll"
    return f"[{quiz} {poll.get('question', '')} ({options})]"


def _other(message: JSON) -> str:
    if "text" in message:
        return str(message["text"])
    if "sticker" in message:
        emoji = message["sticker"].get("emoji")
        return f"[sticker {emoji}]" if emoji else "[sticker]"
    if "venue" in message:
        venue = message["venue"]
        return f"[venue {venue.get('title', '')}, {venue.get('address', '')}]"
    if "location" in message:
        loc = message["location"]
        return f"[location {loc.get('latitude')}, {loc.get('longitude')}]"
    if "contact" in message:
        contact = message["contact"]
        parts = (contact.get(k) for k in ("first_name", "last_name", "phone_number"))
        return "[contact " + " ".join(str(p) for p in parts if p) + "]"
    if "poll" in message:
        return _poll(message["poll"])
    if "dice" in message:
        dice = message["dice"]
        return f"[dice {dice.get('emoji', '')} {dice.get('value', '')}]"
    for kind in ("invoice", "game"):
        if kind in message:
            return f"[{kind} {message[kind].get('title', '')}]"
    return "[message]"


def describe(message: JSON) -> str:
    """One message's content as the chat shows it (the text may span several lines)."""
    for kind in _FILE_KINDS:
        if kind in message:
            return _with_caption(_file(kind, message), message)
    return _other(message)


def _label(button: JSON) -> str:
    return str(button.get("text", "")).replace("\n", " ")


def _inline(rows: list[list[JSON]]) -> Keyboard:
    lines: list[str] = []
    buttons: list[Button] = []
    for row in rows:
        cells: list[str] = []
        for button in row:
            label = _label(button)
            if "callback_data" in button:
                buttons.append(Button(label, "callback", str(button["callback_data"])))
                cells.append(f"[{len(buttons)}] {label}")
            elif "url" in button:
                cells.append(f"<{label}: {button['url']}>")
            else:
                # switch_inline_query, web_app, login_url, pay…: not pressable here.
                what = next((k for k in button if k != "text"), "button")
                cells.append(f"({label}: {what.replace('_', ' ')})")
        if cells:
            lines.append("  ".join(cells))
    return Keyboard("inline", tuple(lines), tuple(buttons))


def _reply(markup: JSON) -> Keyboard:
    lines: list[str] = []
    buttons: list[Button] = []
    for row in markup.get("keyboard") or ():
        cells: list[str] = []
        for button in row:
            label = button if isinstance(button, str) else _label(button)
            buttons.append(Button(label, "text", label))
            cells.append(f"[{len(buttons)}] {label}")
        if cells:
            lines.append("  ".join(cells))
    one_time = bool(markup.get("one_time_keyboard"))
    return Keyboard("reply", tuple(lines), tuple(buttons), one_time)


def keyboard_of(markup: Any) -> Keyboard | None:
    """The keyboard a ``reply_markup`` carries; None when it carries none (absent, empty, or a
    ``force_reply``)."""
    if not isinstance(markup, dict):
        return None
    rows = markup.get("inline_keyboard")
    if rows:
        return _inline(rows)
    if markup.get("keyboard"):
        return _reply(markup)
    if markup.get("remove_keyboard"):
        return Keyboard("remove")
    return None
