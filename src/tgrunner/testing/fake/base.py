"""Small types shared by FakeTelegram's modules: the error it answers with, an uploaded file,
the slice of the world that simulated users need, and the fields that newer Bot API versions
require."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["NEWER_REQUIRED_FIELDS", "ApiError", "Upload", "World"]

# Fields that Bot API versions newer than the shipped spec made required, and that current
# clients insist on: aiogram 3.31 targets Bot API 10.3 and requires fields the 10.1 spec lacks.
# The generator and the simulated users send them only while the spec lacks them; once the spec
# has a field it comes from the spec, and its entry here must be pruned (a test checks).
NEWER_REQUIRED_FIELDS: Mapping[str, Mapping[str, Any]] = {
    "ChatAdministratorRights": {"can_send_welcome_messages": False},
    "ChatMemberAdministrator": {"can_send_welcome_messages": False},
}


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": code, "description": ...}``.

    ``description`` is Telegram's own text, e.g. ``"Bad Request: chat not found"``;
    ``parameters`` becomes the envelope's ``parameters`` object (``retry_after``,
    ``migrate_to_chat_id``) when not empty.
    """

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.parameters = parameters or {}

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass(slots=True)
class Upload:
    """A file sent in a multipart request."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)


class World(Protocol):
    """What simulated users need from FakeTelegram's state.

    ``push_update`` assigns the next ``update_id``, queues the update for ``getUpdates`` or
    webhook delivery (if the bot's ``allowed_updates`` admit its kind) and returns it.
    """

    @property
    def bot_user(self) -> dict[str, Any]: ...

    def now(self) -> int: ...

    def next_message_id(self, chat_id: int) -> int: ...

    def remember_message(self, message: dict[str, Any]) -> None: ...

    def get_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None: ...

    def register_chat(self, chat: dict[str, Any]) -> None: ...

    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]: ...
