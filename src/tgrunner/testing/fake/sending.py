"""The core of FakeTelegram's message methods: the chat a message goes to, its common fields,
replies, text and caption checks, and ``sendMessage``. :mod:`.content` and :mod:`.messages` build
on :class:`Sending`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tgrunner.testing.fake.base import ApiError
from tgrunner.testing.fake.world import BotState, State

__all__ = ["Handler", "Sending"]

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


# What Telegram answers a send into a chat the bot was removed from (403), by the chat's type.
_KICKED = {
    "private": "Forbidden: bot was blocked by the user",
    "group": "Forbidden: bot was kicked from the group chat",
    "supergroup": "Forbidden: bot was kicked from the supergroup chat",
    "channel": "Forbidden: bot was kicked from the channel chat",
}


def _utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _bare(message: dict[str, Any]) -> dict[str, Any]:
    """A message as embedded in another (``reply_to_message``): without its own reply."""
    if "reply_to_message" not in message:
        return message
    return {k: v for k, v in message.items() if k != "reply_to_message"}


class Sending:
    """Building and sending a message: what every send method of :class:`~.messages.Messages`
    starts and ends with."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.rng = state.rng
        self._chat_views: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

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
        """A new message of the bot in ``params["chat_id"]``, with its reply resolved; 403 when
        the bot is blocked by the user (a private chat) or kicked from the chat."""
        state = self.state
        if chat is None:
            chat = state.resolve_chat(params["chat_id"])
        chat_id = chat["id"]
        members = state.members.get(chat_id)
        if members:
            me = members.get(bot.user["id"])
            if me is not None and me.get("status") == "kicked":
                raise ApiError(403, _KICKED.get(chat.get("type", ""), _KICKED["group"]))
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
