"""The bot's messages in a chat as the control API reports them: each change numbered, so a
script reads only what changed since its cursor (see :mod:`tgrunner.testing.fake.control`)."""

from __future__ import annotations

from dataclasses import dataclass

from tgrunner.testing.fake.control.fields import JSON, ControlError
from tgrunner.testing.fake.world import State

__all__ = ["ChatLog", "Seen", "button_data", "buttons", "reply_json"]

_KINDS = (
    "text", "photo", "animation", "audio", "document", "video", "video_note", "voice",
    "sticker", "location", "venue", "contact", "poll", "dice", "invoice", "game", "paid_media",
)  # fmt: skip


@dataclass(slots=True)
class Seen:
    """The version of one bot message last reported, and its number in the chat's log."""

    seq: int
    message: JSON
    deleted: bool


class ChatLog:
    """Numbers the changes to the bot's messages in one chat: a new message, an edit, a
    deletion. It compares the chat's history with what it saw when asked (``scan``), so the
    server's hot path does no extra work for it."""

    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id
        self.seq = 0
        self._seen: dict[int, Seen] = {}

    def scan(self, state: State) -> None:
        """Number what changed in the chat since the last scan."""
        sent = state.bot_messages.get(self.chat_id, ())
        history = state.messages.get(self.chat_id, {})
        seen = self._seen
        for message in sent:
            mid = message["message_id"]
            now = history.get(mid)
            entry = seen.get(mid)
            if entry is None:
                self.seq += 1
                seen[mid] = Seen(self.seq, now if now is not None else message, now is None)
            elif now is None:
                if not entry.deleted:
                    self.seq += 1
                    entry.seq, entry.deleted = self.seq, True
            elif now is not entry.message:
                if now != entry.message or entry.deleted:
                    self.seq += 1
                    entry.seq, entry.deleted = self.seq, False
                entry.message = now
        if len(seen) > len(sent):
            # The history dropped old messages (a bounded FakeTelegram): forget them too.
            live = {message["message_id"] for message in sent}
            for mid in [mid for mid in seen if mid not in live]:
                del seen[mid]

    def result(self, after: int) -> JSON:
        """The replies answer: the messages whose latest change is after ``after``."""
        changed = sorted((e for e in self._seen.values() if e.seq > after), key=lambda e: e.seq)
        return {
            "chat_id": self.chat_id,
            "cursor": self.seq,
            "replies": [reply_json(entry) for entry in changed],
        }


def buttons(message: JSON) -> list[JSON]:
    """A message's inline buttons, row by row, each with its 0-based ``index``."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [{"index": i} | button for i, button in enumerate(b for row in rows for b in row)]


def button_data(message: JSON, index: int) -> str:
    """The ``callback_data`` of button ``index``; 404 without that button, 400 if it is no
    callback button (a URL button, say)."""
    found = buttons(message)
    where = f"message {message['message_id']} of chat {message['chat']['id']}"
    if not 0 <= index < len(found):
        have = f"buttons 0 to {len(found) - 1}" if found else "no inline buttons"
        raise ControlError(404, f"no button {index} in {where}: it has {have}")
    button = found[index]
    if "callback_data" not in button:
        label = button.get("text")
        raise ControlError(400, f"button {index} ({label!r}) of {where} is no callback button")
    return str(button["callback_data"])


def reply_json(entry: Seen) -> JSON:
    """One entry of a replies answer."""
    message = entry.message
    return {
        "seq": entry.seq,
        "message_id": message["message_id"],
        "kind": next((k for k in _KINDS if k in message), "other"),
        "text": message.get("text", message.get("caption")),
        "edited": "edit_date" in message,
        "deleted": entry.deleted,
        "buttons": buttons(message),
        "message": message,
    }
