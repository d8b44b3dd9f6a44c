"""Messages as the simulation handles them: plain dicts shaped like the Bot API's Message, and
the helpers that build their text, find them in updates, edit them and quote them."""

from __future__ import annotations

from typing import Any

from tgrunner.testing.fake.base import World
from tgrunner.testing.fake.users.entities import parse_entities

__all__ = [
    "JSON",
    "MESSAGE_KINDS",
    "bare",
    "current",
    "edited",
    "message_of",
    "origin",
    "with_text",
]

JSON = dict[str, Any]

MESSAGE_KINDS = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
    "guest_message",
)
_CAPTIONED = ("animation", "audio", "document", "paid_media", "photo", "video", "voice")


def with_text(text: str, *, caption: bool = False) -> JSON:
    """A message's ``text`` (or ``caption``) with the entities found in it."""
    key, ents = ("caption", "caption_entities") if caption else ("text", "entities")
    content: JSON = {key: text}
    entities = parse_entities(text)
    if entities:
        content[ents] = entities
    return content


def message_of(obj: Any) -> JSON:
    """A Message from a Message dict or an update that carries one."""
    if isinstance(obj, dict):
        if "message_id" in obj and "chat" in obj:
            return obj
        for kind in MESSAGE_KINDS:
            if isinstance(obj.get(kind), dict):
                return obj[kind]
        if isinstance(obj.get("message"), dict):  # a CallbackQuery
            return obj["message"]
    raise TypeError(f"expected a Message (or an update carrying one), got {obj!r}")


def bare(message: JSON) -> JSON:
    """A message as nested in ``reply_to_message``: Telegram drops its own reply there."""
    return {k: v for k, v in message.items() if k != "reply_to_message"}


def current(world: World, message: JSON) -> JSON:
    """The latest stored version of a message; ``LookupError`` if it is gone."""
    chat_id = int(message["chat"]["id"])
    found = world.get_message(chat_id, int(message["message_id"]))
    if found is None:
        raise LookupError(f"message {message['message_id']} of chat {chat_id} does not exist")
    return found


def edited(message: JSON, text: str, world: World) -> JSON:
    """``message`` with a new text (or caption, for media) and an ``edit_date``."""
    caption = "text" not in message
    if caption and not any(k in message for k in _CAPTIONED):
        raise ValueError(f"message {message['message_id']} has no text or caption to edit")
    drop = ("caption", "caption_entities") if caption else ("text", "entities")
    result = {k: v for k, v in message.items() if k not in drop}
    result |= with_text(text, caption=caption)
    result["edit_date"] = world.now()
    return result


def origin(message: JSON) -> JSON:
    """The MessageOrigin of a message being forwarded or quoted from another chat."""
    date = message["date"]
    if message["chat"]["type"] == "channel":
        found = {"type": "channel", "date": date, "chat": message["chat"]}
        return found | {"message_id": message["message_id"]}
    sender_chat = message.get("sender_chat")
    if sender_chat is not None:
        return {"type": "chat", "date": date, "sender_chat": sender_chat}
    return {"type": "user", "date": date, "sender_user": message["from"]}
