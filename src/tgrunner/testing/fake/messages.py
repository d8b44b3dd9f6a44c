"""Message behaviour of FakeTelegram: send, copy, forward, edit and delete, over the per-chat
history in :class:`~tgrunner.testing.fake.world.State`.

- The chat must exist (``Bad Request: chat not found``); ``@username`` works for chats that
  have one. A user who blocked the bot, or a chat that kicked it, answers 403 (``Forbidden:
  bot was blocked by the user``, ``Forbidden: bot was kicked from the group chat``).
- Text is 1–4096 characters (UTF-16 code units, as Telegram counts them); captions ≤ 1024.
- ``reply_parameters`` must name an existing message unless ``allow_sending_without_reply``
  (``Bad Request: message to be replied not found``); a reply into another chat becomes an
  ``external_reply``.
- A sent message has ``from`` (the bot; ``sender_chat`` in channels), ``chat``, ``date``, the
  content, ``entities`` when given, ``reply_markup`` when it is an inline keyboard,
  ``reply_to_message`` when replying, and echoes ``message_thread_id`` and
  ``business_connection_id``. Message ids increase in each chat.
- Edits need the message (``Bad Request: message to edit not found``) and a change
  (``Bad Request: message is not modified: ...``); an edit without ``reply_markup`` removes
  the inline keyboard, as in Telegram.

Simplifications, all lenient: ``parse_mode`` markup is kept as sent (no entities are parsed
from it), and any plausible file id string is accepted and remembered, so media ids from
simulated users' messages are never rejected.
"""

from __future__ import annotations

from typing import Any

from tgrunner.testing.fake.base import ApiError
from tgrunner.testing.fake.content import ContentSending
from tgrunner.testing.fake.sending import (
    _CONTENT_KEYS,
    _MEDIA_KINDS,
    _NOT_MODIFIED,
    Handler,
    _utf16_len,
)
from tgrunner.testing.fake.world import BotState, State

__all__ = ["Handler", "Messages"]


class Messages(ContentSending):
    """The message methods, as :data:`Handler` s keyed by method name in :attr:`handlers`."""

    def __init__(self, state: State) -> None:
        super().__init__(state)
        s = self
        self.handlers: dict[str, Handler] = {
            "sendMessage": s.send_message,
            "sendMediaGroup": s.send_media_group,
            "sendLocation": s.send_location,
            "sendContact": s.send_contact,
            "sendPoll": s.send_poll,
            "sendDice": s.send_dice,
            "sendVenue": s.send_venue,
            "copyMessage": s.copy_message,
            "copyMessages": s.copy_messages,
            "forwardMessage": s.forward_message,
            "forwardMessages": s.forward_messages,
            "editMessageText": s.edit_message_text,
            "editMessageCaption": s.edit_message_caption,
            "editMessageReplyMarkup": s.edit_message_reply_markup,
            "editMessageMedia": s.edit_message_media,
            "deleteMessage": s.delete_message,
            "deleteMessages": s.delete_messages,
        }
        for kind in _MEDIA_KINDS:
            name = "send" + "".join(p.capitalize() for p in kind.split("_"))
            self.handlers[name] = self._send_media(kind)

    # -- copy and forward ------------------------------------------------------------------

    def _source(self, params: dict[str, Any], message_id: Any, what: str) -> dict[str, Any]:
        source = self._message_in(params["from_chat_id"], message_id)
        if source is None or not any(k in source for k in _CONTENT_KEYS):
            raise ApiError(400, f"Bad Request: message to {what} not found")
        return source

    def _copy_into(
        self, bot: BotState, params: dict[str, Any], source: dict[str, Any], forward: bool
    ) -> dict[str, Any]:
        msg = self._begin(bot, params)
        if forward:
            msg["forward_origin"] = self._origin(source)
        for key in _CONTENT_KEYS:
            if key in source:
                msg[key] = source[key]
        if not forward and "caption" in params:
            for key in ("caption", "caption_entities"):
                msg.pop(key, None)
            self._caption(msg, params)
        return self._finish(msg, params if not forward else {})

    def copy_message(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        source = self._source(params, params["message_id"], "copy")
        return {"message_id": self._copy_into(bot, params, source, False)["message_id"]}

    def forward_message(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        source = self._source(params, params["message_id"], "forward")
        return self._copy_into(bot, params, source, True)

    def _many(self, bot: BotState, params: dict[str, Any], forward: bool) -> Any:
        what = "forward" if forward else "copy"
        ids = params.get("message_ids") or []
        if not ids or len(ids) > 100:
            raise ApiError(400, "Bad Request: message_ids must be non-empty (at most 100)")
        sources = []
        for mid in sorted(int(m) for m in ids):
            found = self._message_in(params["from_chat_id"], mid)
            # Telegram skips messages it cannot find (or cannot copy) instead of failing.
            if found is not None and any(k in found for k in _CONTENT_KEYS):
                sources.append(found)
        if not sources:
            raise ApiError(400, f"Bad Request: messages to {what} not found")
        base = {k: v for k, v in params.items() if k not in ("caption", "reply_parameters")}
        return [
            {"message_id": self._copy_into(bot, base, src, forward)["message_id"]}
            for src in sources
        ]

    def copy_messages(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        return self._many(bot, params, forward=False)

    def forward_messages(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        return self._many(bot, params, forward=True)

    # -- editing and deleting --------------------------------------------------------------

    def _editable(self, bot: BotState, params: dict[str, Any]) -> dict[str, Any] | None:
        """The message to edit; None for inline messages (the fake does not track them)."""
        if params.get("inline_message_id"):
            return None
        if params.get("chat_id") is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        if params.get("message_id") is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        message = self._message_in(params["chat_id"], params["message_id"])
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        sender = message.get("from")
        if sender is not None and sender.get("id") != bot.user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _apply_edit(
        self, message: dict[str, Any], changes: dict[str, Any], params: dict[str, Any]
    ) -> dict[str, Any]:
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and markup.get("inline_keyboard") else None
        same = all(message.get(k) == v for k, v in changes.items()) and (
            message.get("reply_markup") == new_markup
        )
        if same:
            raise ApiError(400, _NOT_MODIFIED)
        edited = {k: v for k, v in message.items() if k != "reply_markup"}
        edited.update({k: v for k, v in changes.items() if v is not None})
        for key, value in changes.items():
            if value is None:
                edited.pop(key, None)
        edited["edit_date"] = self.state.now()
        if new_markup is not None:
            edited["reply_markup"] = new_markup
        self.state.remember_message(edited)
        self.state.changed()
        return edited

    def edit_message_text(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        text = self._check_text(
            params.get("text"),
            "Bad Request: message text is empty",
            "Bad Request: message is too long",
            4096,
        )
        message = self._editable(bot, params)
        if message is None:
            return True
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        changes = {"text": text, "entities": params.get("entities") or None}
        return self._apply_edit(message, changes, params)

    def edit_message_caption(
        self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]
    ) -> Any:
        message = self._editable(bot, params)
        if message is None:
            return True
        if not any(k in message for k in _MEDIA_KINDS):
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption = params.get("caption") or None
        if caption is not None and _utf16_len(str(caption)) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        changes = {
            "caption": caption,
            "caption_entities": (params.get("caption_entities") or None) if caption else None,
        }
        return self._apply_edit(message, changes, params)

    def edit_message_reply_markup(
        self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]
    ) -> Any:
        message = self._editable(bot, params)
        if message is None:
            return True
        return self._apply_edit(message, {}, params)

    def edit_message_media(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        message = self._editable(bot, params)
        media = params.get("media")
        if not isinstance(media, dict) or media.get("type") not in _MEDIA_KINDS:
            raise ApiError(400, "Bad Request: can't parse InputMedia: unsupported media type")
        kind = media["type"]
        stored, name = self.stored(kind, media.get("media"), raw)
        if message is None:
            return True
        if not any(k in message for k in _MEDIA_KINDS):
            raise ApiError(400, "Bad Request: there is no media in the message to edit")
        changes: dict[str, Any] = {k: None for k in _MEDIA_KINDS}
        changes[kind] = self._media_object(kind, stored, name, media)
        changes["caption"] = media.get("caption") or None
        changes["caption_entities"] = media.get("caption_entities") or None
        return self._apply_edit(message, changes, params)

    def delete_message(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        chat = self.state.resolve_chat(params["chat_id"])
        if not self.state.forget_message(chat["id"], int(params["message_id"])):
            raise ApiError(400, "Bad Request: message to delete not found")
        self.state.changed()
        return True

    def delete_messages(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        chat = self.state.resolve_chat(params["chat_id"])
        ids = params.get("message_ids") or []
        if not ids or len(ids) > 100:
            raise ApiError(400, "Bad Request: message_ids must be non-empty (at most 100)")
        # Telegram skips messages it cannot find.
        for mid in ids:
            self.state.forget_message(chat["id"], int(mid))
        self.state.changed()
        return True
