"""The handler context: the update, the bot, per-update data and helpers to answer.

::

    @router.message()
    async def echo(ctx: Context) -> None:
        ctx.data["seen"] = True            # shared with this update's middlewares
        await ctx.reply(ctx.text or "…")   # a reply to the message, in its chat and topic

    @router.command("count")
    async def count(ctx: Context) -> None:
        async with ctx.user_data as data:  # locked across processes while the block runs
            data["n"] = data.get("n", 0) + 1
        await ctx.reply(f"{data['n']}")
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.state.current import current_store
from tgrunner.state.data import StoredDict
from tgrunner.state.store import Store

__all__ = ["JSON", "MESSAGE_KINDS", "Context"]

JSON = dict[str, Any]

# Update kinds whose payload is a Message.
MESSAGE_KINDS = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_message",
        "edited_business_message",
        "guest_message",
    }
)


class Context:
    """What a handler gets: the update, the bot, and helpers to answer.

    - ``update``: the raw update dict; ``kind``: its kind (``"message"``, ``"callback_query"``…);
      ``payload``: ``update[kind]``; ``bot``: the :class:`~tgrunner.Bot` to call.
    - ``message``: the message of a message-kind update, or of a callback query (else None).
    - ``chat_id``, ``user``, ``text`` (text or caption), ``callback_data`` (the data of a
      callback query), ``args`` (the text after a command, default ``""``), ``match`` (the
      ``re.Match`` of the route's text or data pattern, default None).
    - ``data``: a dict for this update alone, empty at first, shared by the middlewares and the
      handler that run for it (``ctx.data["user"] = ...`` in a middleware, read in the handler).
    - ``chat_data`` / ``user_data``: the chat's and the sender's dicts in the bot's state store
      (keys ``chat:<chat id>`` and ``user:<user id>``), a :class:`~tgrunner.state.StoredDict`:
      ``async with ctx.user_data as data: data["n"] = data.get("n", 0) + 1`` runs the block
      in a transaction on the key, so concurrent updates of one user (from two chats, in two
      worker processes) never lose a change; ``await ctx.chat_data.get()`` reads without a
      lock. Nothing is read or written until then. The two do not nest: for both at once use
      ``ctx.store.transaction(ctx.chat_data.key, ctx.user_data.key)``.
    - ``store``: the bot's :class:`~tgrunner.state.Store` (``tgrunner run --state URL``,
      default SQLite in the data dir), for transactions on keys of your own (a transfer
      between two accounts). StateError when the bot runs without one.
    """

    __slots__ = ("args", "bot", "data", "kind", "match", "payload", "update")

    def __init__(self, update: JSON, kind: str, bot: Bot) -> None:
        self.update = update
        self.kind = kind
        self.payload: JSON = update[kind]
        self.bot = bot
        self.match: re.Match[str] | None = None
        self.args = ""
        self.data: dict[str, Any] = {}

    @property
    def update_id(self) -> int:
        return self.update["update_id"]

    @property
    def message(self) -> JSON | None:
        if self.kind in MESSAGE_KINDS:
            return self.payload
        if self.kind == "callback_query":
            return self.payload.get("message")
        return None

    @property
    def chat_id(self) -> int | None:
        msg = self.message
        if msg is not None:
            return msg["chat"]["id"]
        chat = self.payload.get("chat") if isinstance(self.payload, dict) else None
        return chat["id"] if chat else None

    @property
    def user(self) -> JSON | None:
        p = self.payload
        return p.get("from") or p.get("user") if isinstance(p, dict) else None

    @property
    def text(self) -> str | None:
        msg = self.message if self.kind != "callback_query" else None
        return (msg.get("text") or msg.get("caption")) if msg else None

    @property
    def store(self) -> Store:
        return current_store()

    @property
    def chat_data(self) -> StoredDict:
        chat_id = self.chat_id
        return StoredDict(None if chat_id is None else f"chat:{chat_id}", what="chat_data")

    @property
    def user_data(self) -> StoredDict:
        user = self.user
        return StoredDict(None if user is None else f"user:{user['id']}", what="user_data")

    @property
    def callback_data(self) -> str | None:
        """The ``data`` of a callback query; None for any other update."""
        return self.payload.get("data") if self.kind == "callback_query" else None

    def _reply_params(self, params: dict[str, Any]) -> None:
        msg = self.message
        if msg is None:
            return
        if "business_connection_id" in msg:
            params.setdefault("business_connection_id", msg["business_connection_id"])
        if msg.get("is_topic_message") and "message_thread_id" in msg:
            params.setdefault("message_thread_id", msg["message_thread_id"])

    def answer(self, text: str, **params: Any) -> Awaitable[JSON]:
        """Send ``text`` to the update's chat (or the user, in a private-only update)."""
        chat_id = self.chat_id
        if chat_id is None:
            user = self.user
            if user is None:
                raise ValueError(f"a {self.kind} update has no chat to answer in")
            chat_id = user["id"]
        self._reply_params(params)
        return self.bot.send_message(chat_id, text, **params)

    def reply(self, text: str, **params: Any) -> Awaitable[JSON]:
        """Send ``text`` as a reply to the update's message (``reply_parameters`` set).

        The reply is sent even if the original was deleted meanwhile
        (``allow_sending_without_reply``).
        """
        msg = self.message
        if msg is not None:
            params.setdefault(
                "reply_parameters",
                {"message_id": msg["message_id"], "allow_sending_without_reply": True},
            )
        return self.answer(text, **params)

    def answer_callback(self, text: str | None = None, **params: Any) -> Awaitable[bool]:
        """Answer the callback query (stops the client's loading spinner)."""
        if self.kind != "callback_query":
            raise ValueError(f"answer_callback needs a callback_query update, not {self.kind}")
        if text is not None:
            params["text"] = text
        return self.bot.answer_callback_query(self.payload["id"], **params)
