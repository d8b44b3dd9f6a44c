"""Message behaviour of FakeTelegram: send, copy, forward, edit and delete, over the per-chat
history in :class:`~tgrunner.testing.fake.world.State`.

- The chat must exist (``Bad Request: chat not found``); ``@username`` works for chats that
  have one.
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

import mimetypes
from collections.abc import Callable
from typing import Any

from tgrunner.testing.fake.base import ApiError, Upload
from tgrunner.testing.fake.world import BotState, State, StoredFile

__all__ = ["Handler", "Messages"]

Handler = Callable[[BotState, dict[str, Any], dict[str, Any]], Any]
"""A method's behaviour: ``(bot, validated params, raw params) -> result``."""

_CHAT_FIELDS = ("id", "type", "title", "username", "first_name", "last_name", "is_forum")
_CONTENT_KEYS = (
    "text",
    "entities",
    "link_preview_options",
    "animation",
    "audio",
    "document",
    "photo",
    "sticker",
    "video",
    "video_note",
    "voice",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "contact",
    "dice",
    "poll",
    "venue",
    "location",
)
_MEDIA_KINDS = (
    "photo",
    "document",
    "video",
    "audio",
    "voice",
    "animation",
    "sticker",
    "video_note",
)
_DICE_FACES = {"🎲": 6, "🎯": 6, "🎳": 6, "🏀": 5, "⚽": 5, "🎰": 64}
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


def _utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _bare(message: dict[str, Any]) -> dict[str, Any]:
    """A message as embedded in another (``reply_to_message``): without its own reply."""
    if "reply_to_message" not in message:
        return message
    return {k: v for k, v in message.items() if k != "reply_to_message"}


class Messages:
    """The message methods, as :data:`Handler` s keyed by method name in :attr:`handlers`."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.rng = state.rng
        self._chat_views: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
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

    def chat_view(self, chat: dict[str, Any]) -> dict[str, Any]:
        """The Chat object embedded in messages: only Chat's fields, cached per chat dict."""
        cid = chat["id"]
        cached = self._chat_views.get(cid)
        if cached is not None and cached[0] is chat:
            return cached[1]
        view = {k: chat[k] for k in _CHAT_FIELDS if k in chat}
        self._chat_views[cid] = (chat, view)
        return view

    def _message_in(self, chat_id: Any, message_id: Any) -> dict[str, Any] | None:
        chat = self.state.resolve_chat(chat_id)
        return self.state.get_message(chat["id"], int(message_id))

    # -- sending ---------------------------------------------------------------------------

    def _begin(
        self, bot: BotState, params: dict[str, Any], chat: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A new message of the bot in ``params["chat_id"]``, with its reply resolved."""
        state = self.state
        if chat is None:
            chat = state.resolve_chat(params["chat_id"])
        chat_id = chat["id"]
        view = self.chat_view(chat)
        msg: dict[str, Any] = {"message_id": state.next_message_id(chat_id)}
        if chat.get("type") == "channel":
            msg["sender_chat"] = view
        else:
            msg["from"] = bot.user
        msg["chat"] = view
        msg["date"] = state.now()
        thread = params.get("message_thread_id")
        if thread is not None:
            msg["message_thread_id"] = thread
            if chat.get("is_forum"):
                msg["is_topic_message"] = True
        business = params.get("business_connection_id")
        if business is not None:
            msg["business_connection_id"] = business
        reply = params.get("reply_parameters")
        if reply:
            self._reply(msg, chat_id, reply, params)
        if params.get("protect_content"):
            msg["has_protected_content"] = True
        effect = params.get("message_effect_id")
        if effect:
            msg["effect_id"] = effect
        return msg

    def _reply(
        self, msg: dict[str, Any], chat_id: int, reply: dict[str, Any], params: dict[str, Any]
    ) -> None:
        target_chat_id = chat_id
        if reply.get("chat_id") is not None:
            target_chat_id = self.state.resolve_chat(reply["chat_id"])["id"]
        target = self.state.get_message(target_chat_id, int(reply["message_id"]))
        if target is None:
            if reply.get("allow_sending_without_reply") or params.get(
                "allow_sending_without_reply"
            ):
                return
            raise ApiError(400, "Bad Request: message to be replied not found")
        if target_chat_id == chat_id:
            msg["reply_to_message"] = _bare(target)
        else:
            external: dict[str, Any] = {
                "origin": self._origin(target),
                "chat": target["chat"],
                "message_id": target["message_id"],
            }
            for kind in _MEDIA_KINDS:
                if kind in target:
                    external[kind] = target[kind]
            msg["external_reply"] = external
        quote = reply.get("quote")
        if quote:
            msg["quote"] = {
                "text": quote,
                "position": int(reply.get("quote_position") or 0),
                "is_manual": True,
            }
            if reply.get("quote_entities"):
                msg["quote"]["entities"] = reply["quote_entities"]

    def _finish(self, msg: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            msg["reply_markup"] = markup
        self.state.record_bot_message(msg)
        return msg

    @staticmethod
    def _check_text(text: Any, empty: str, too_long: str, limit: int) -> str:
        if text is None or not str(text).strip():
            raise ApiError(400, empty)
        text = str(text)
        if len(text) > limit // 2 and _utf16_len(text) > limit:
            raise ApiError(400, too_long)
        return text

    def _caption(self, msg: dict[str, Any], params: dict[str, Any]) -> None:
        caption = params.get("caption")
        if caption:
            if _utf16_len(str(caption)) > 1024:
                raise ApiError(400, "Bad Request: message caption is too long")
            msg["caption"] = caption
            if params.get("caption_entities"):
                msg["caption_entities"] = params["caption_entities"]
            if params.get("show_caption_above_media"):
                msg["show_caption_above_media"] = True
        if params.get("has_spoiler"):
            msg["has_media_spoiler"] = True

    def send_message(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        text = self._check_text(
            params.get("text"),
            "Bad Request: message text is empty",
            "Bad Request: message is too long",
            4096,
        )
        msg = self._begin(bot, params)
        msg["text"] = text
        entities = params.get("entities")
        if entities:
            msg["entities"] = entities
        if params.get("link_preview_options"):
            msg["link_preview_options"] = params["link_preview_options"]
        return self._finish(msg, params)

    # -- media -----------------------------------------------------------------------------

    def stored(self, kind: str, value: Any, raw: dict[str, Any]) -> tuple[StoredFile, str | None]:
        """Resolve an InputFile-or-String parameter to a stored file and its upload name."""
        state = self.state
        if isinstance(value, str) and value.startswith("attach://"):
            value = raw.get(value[9:])
            if not isinstance(value, Upload):
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if isinstance(value, Upload):
            ext = mimetypes.guess_extension(value.content_type or "") or ""
            if "." in value.filename:
                ext = value.filename[value.filename.rfind(".") :]
            if kind == "photo":
                # Telegram re-encodes photos as JPEG.
                ext = ".jpg"
            return state.add_file(kind, data=value.data, ext=ext), value.filename
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if value.startswith(("http://", "https://")):
            name = value.rstrip("/").rsplit("/", 1)[-1] or None
            return state.add_file(kind, size=self.rng.randint(10_000, 900_000)), name
        known = state.files.get(value)
        if known is not None:
            return known, None
        # A file id the fake never issued (e.g. from a simulated user's message): accept it.
        stored = state.add_file(kind, size=self.rng.randint(10_000, 900_000))
        del state.files[stored.file_id]
        stored.file_id = value
        state.files[value] = stored
        return stored, None

    def _media_object(
        self, kind: str, stored: StoredFile, name: str | None, params: dict[str, Any]
    ) -> Any:
        base = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        size = {"file_size": stored.file_size}
        if kind == "photo":
            sizes = []
            for width, height in ((90, 68), (320, 240)):
                small = self.state.add_file("photo", size=max(1, stored.file_size * width // 6400))
                sizes.append(
                    {
                        "file_id": small.file_id,
                        "file_unique_id": small.file_unique_id,
                        "file_size": small.file_size,
                        "width": width,
                        "height": height,
                    }
                )
            sizes.append({**base, **size, "width": 800, "height": 600})
            return sizes
        mime = (mimetypes.guess_type(name)[0] if name else None) or {
            "video": "video/mp4",
            "audio": "audio/mpeg",
            "voice": "audio/ogg",
            "animation": "video/mp4",
            "document": "application/octet-stream",
        }.get(kind)
        duration = int(params.get("duration") or 1 + stored.file_size % 60)
        width = int(params.get("width") or 640)
        height = int(params.get("height") or 360)
        named = {"file_name": name} if name else {}
        if kind == "document":
            return {**base, **named, "mime_type": mime, **size}
        if kind in ("video", "animation"):
            shape = {"width": width, "height": height, "duration": duration}
            return {**base, **shape, **named, "mime_type": mime, **size}
        if kind == "audio":
            extra = {k: params[k] for k in ("performer", "title") if params.get(k)}
            return {**base, "duration": duration, **extra, **named, "mime_type": mime, **size}
        if kind == "voice":
            return {**base, "duration": duration, "mime_type": mime, **size}
        if kind == "video_note":
            return {
                **base,
                "length": int(params.get("length") or 240),
                "duration": duration,
                **size,
            }
        sticker = {
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        if params.get("emoji"):
            sticker["emoji"] = params["emoji"]
        return {**base, **sticker, **size}

    def _send_media(self, kind: str) -> Handler:
        def send(bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
            value = params.get(kind)
            if value is None:
                raise ApiError(400, f"Bad Request: there is no {kind} in the request")
            stored, name = self.stored(kind, value, raw)
            msg = self._begin(bot, params)
            msg[kind] = self._media_object(kind, stored, name, params)
            if kind == "animation":
                # Telegram sends animations with a ``document`` twin for old clients.
                msg["document"] = {
                    k: v for k, v in msg[kind].items() if k not in ("width", "height", "duration")
                }
            if kind not in ("sticker", "video_note"):
                self._caption(msg, params)
            return self._finish(msg, params)

        send.__name__ = f"send_{kind}"
        return send

    def send_media_group(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        media = params.get("media") or []
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: media group must contain 2-10 items")
        chat = self.state.resolve_chat(params["chat_id"])
        group_id = str(self.rng.randrange(10**17, 10**18))
        messages = []
        for item in media:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in ("photo", "video", "audio", "document"):
                raise ApiError(400, "Bad Request: can't parse InputMedia: unsupported media type")
            stored, name = self.stored(kind, item.get("media"), raw)
            msg = self._begin(bot, params, chat)
            msg["media_group_id"] = group_id
            msg[kind] = self._media_object(kind, stored, name, item)
            self._caption(msg, item)
            messages.append(self._finish(msg, {}))
        return messages

    def send_location(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        msg = self._begin(bot, params)
        msg["location"] = self._location(params)
        return self._finish(msg, params)

    @staticmethod
    def _location(params: dict[str, Any]) -> dict[str, Any]:
        loc = {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
        for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
            if params.get(key) is not None:
                loc[key] = params[key]
        return loc

    def send_venue(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        msg = self._begin(bot, params)
        location = self._location(params)
        venue = {"location": location, "title": params["title"], "address": params["address"]}
        for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
            if params.get(key):
                venue[key] = params[key]
        msg["venue"] = venue
        msg["location"] = location
        return self._finish(msg, params)

    def send_contact(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        msg = self._begin(bot, params)
        contact = {"phone_number": params["phone_number"], "first_name": params["first_name"]}
        for key in ("last_name", "vcard"):
            if params.get(key):
                contact[key] = params[key]
        msg["contact"] = contact
        return self._finish(msg, params)

    def send_poll(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        options = params.get("options") or []
        if len(options) < 2:
            raise ApiError(400, "Bad Request: poll must have at least 2 option")
        if len(options) > 12:
            raise ApiError(400, "Bad Request: poll can't have more than 12 options")
        msg = self._begin(bot, params)
        poll: dict[str, Any] = {
            "id": str(self.rng.randrange(10**18, 10**19)),
            "question": params["question"],
            "options": [
                {
                    "persistent_id": str(i),
                    "text": o.get("text", "") if isinstance(o, dict) else str(o),
                    "voter_count": 0,
                }
                for i, o in enumerate(options)
            ],
            "total_voter_count": 0,
            "is_closed": bool(params.get("is_closed")),
            "is_anonymous": params.get("is_anonymous", True) is not False,
            "type": params.get("type") or "regular",
            "allows_multiple_answers": bool(params.get("allows_multiple_answers")),
            "allows_revoting": bool(params.get("allows_revoting")),
            "members_only": bool(params.get("members_only")),
        }
        for key in ("question_entities", "correct_option_ids", "explanation", "open_period"):
            if params.get(key) is not None:
                poll[key] = params[key]
        msg["poll"] = poll
        return self._finish(msg, params)

    def send_dice(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        emoji = params.get("emoji") or "🎲"
        faces = _DICE_FACES.get(emoji)
        if faces is None:
            raise ApiError(400, "Bad Request: invalid dice emoji specified")
        msg = self._begin(bot, params)
        msg["dice"] = {"emoji": emoji, "value": self.rng.randint(1, faces)}
        return self._finish(msg, params)

    # -- copy and forward ------------------------------------------------------------------

    def _origin(self, source: dict[str, Any]) -> dict[str, Any]:
        if "forward_origin" in source:
            return source["forward_origin"]
        chat = source["chat"]
        date = source["date"]
        if chat.get("type") == "channel":
            return {
                "type": "channel",
                "date": date,
                "chat": chat,
                "message_id": source["message_id"],
            }
        if "from" in source:
            return {"type": "user", "date": date, "sender_user": source["from"]}
        return {"type": "chat", "date": date, "sender_chat": source.get("sender_chat", chat)}

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
