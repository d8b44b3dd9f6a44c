"""The native front-end: a small router from updates to handlers, and the handler context.

::

    router = Router()

    @router.command("start")
    async def start(ctx: Context) -> None:
        await ctx.reply("Hello!")

    @router.callback(data="yes")
    async def yes(ctx: Context) -> None:
        await ctx.answer_callback("Noted")

    @router.message()                       # any other message
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "…")

Routes are tried in the order they were added, within the update's kind; the first match runs.
An update no route matches is ignored (``router.fallback`` can catch it).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tgrunner.client.bot import Bot

__all__ = ["Context", "Handler", "Router"]

JSON = dict[str, Any]
Handler = Callable[["Context"], Awaitable[Any]]
Check = Callable[["Context"], bool]

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
      ``payload``: ``update[kind]``.
    - ``message``: the message of a message-kind update, or of a callback query (else None).
    - ``chat_id``, ``user``, ``text`` (text or caption), ``data`` (callback data), ``args``
      (the text after a command), ``match`` (the regex match of a text or data pattern).
    """

    __slots__ = ("args", "bot", "kind", "match", "payload", "update")

    def __init__(self, update: JSON, kind: str, bot: Bot) -> None:
        self.update = update
        self.kind = kind
        self.payload: JSON = update[kind]
        self.bot = bot
        self.match: re.Match[str] | None = None
        self.args = ""

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
    def data(self) -> str | None:
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


class _Route:
    __slots__ = ("checks", "handler")

    def __init__(self, handler: Handler, checks: tuple[Check, ...]) -> None:
        self.handler = handler
        self.checks = checks


def _command_of(ctx: Context, username: str | None) -> tuple[str, str] | None:
    text = ctx.text
    if not text or text[0] != "/":
        return None
    head, _, args = text.partition(" ")
    name, _, target = head[1:].partition("@")
    if target and username and target.lower() != username.lower():
        return None
    return name.lower(), args.strip()


class Router:
    """Routes updates to handlers by kind, command, text pattern and callback data.

    A router is itself a handler (``await router(update, bot)``), so routers nest with
    :meth:`include`.
    """

    def __init__(self) -> None:
        self._routes: dict[str, list[_Route]] = {}
        self._fallback: Handler | None = None
        self._username: str | None = None

    def kinds(self) -> list[str]:
        """The update kinds some route handles: use as ``allowed_updates``."""
        return list(self._routes)

    def _add(self, kinds: Iterable[str], checks: tuple[Check, ...]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for kind in kinds:
                self._routes.setdefault(kind, []).append(_Route(handler, checks))
            return handler

        return register

    def on(self, *kinds: str, where: Check | None = None) -> Callable[[Handler], Handler]:
        """Handle updates of the given kinds (``"inline_query"``, ``"chat_member"``…)."""
        return self._add(kinds, (where,) if where else ())

    def message(
        self,
        *,
        text: str | re.Pattern[str] | None = None,
        kinds: Iterable[str] = ("message",),
        where: Check | None = None,
    ) -> Callable[[Handler], Handler]:
        """Handle messages; ``text`` matches exactly (str) or by ``re.search`` (pattern)."""
        return self._add(kinds, _checks(text, _text_of, where))

    def command(
        self, *names: str, kinds: Iterable[str] = ("message",)
    ) -> Callable[[Handler], Handler]:
        """Handle ``/name`` commands (also ``/name@thisbot``); ``ctx.args`` has the rest."""
        wanted = frozenset(n.lower().lstrip("/") for n in names)

        def check(ctx: Context) -> bool:
            cmd = _command_of(ctx, self._username)
            if cmd is None or cmd[0] not in wanted:
                return False
            ctx.args = cmd[1]
            return True

        return self._add(kinds, (check,))

    def callback(
        self, *, data: str | re.Pattern[str] | None = None, where: Check | None = None
    ) -> Callable[[Handler], Handler]:
        """Handle callback queries; ``data`` matches exactly (str) or by ``re.search``."""
        return self._add(("callback_query",), _checks(data, _data_of, where))

    def fallback(self, handler: Handler) -> Handler:
        """Handle every update no route matched."""
        self._fallback = handler
        return handler

    def include(self, other: Router) -> None:
        """Add another router's routes after this one's."""
        for kind, routes in other._routes.items():
            self._routes.setdefault(kind, []).extend(routes)

    def set_username(self, username: str | None) -> None:
        """The bot's username, so ``/cmd@otherbot`` is not taken for this bot's."""
        self._username = username

    async def __call__(self, update: JSON, bot: Bot) -> None:
        for kind in update:
            if kind == "update_id":
                continue
            routes = self._routes.get(kind)
            ctx = Context(update, kind, bot)
            if routes:
                for route in routes:
                    if all(check(ctx) for check in route.checks):
                        await route.handler(ctx)
                        return
            if self._fallback is not None:
                await self._fallback(ctx)
            return


def _text_of(ctx: Context) -> str | None:
    return ctx.text


def _data_of(ctx: Context) -> str | None:
    return ctx.data


def _checks(
    wanted: str | re.Pattern[str] | None,
    value_of: Callable[[Context], str | None],
    where: Check | None,
) -> tuple[Check, ...]:
    """Checks for a value matched exactly (str) or by ``re.search`` (pattern), then ``where``."""
    checks: list[Check] = []
    if isinstance(wanted, str):
        checks.append(lambda ctx: value_of(ctx) == wanted)
    elif wanted is not None:
        pattern = wanted
        checks.append(lambda ctx: _search(ctx, pattern, value_of(ctx)))
    if where:
        checks.append(where)
    return tuple(checks)


def _search(ctx: Context, pattern: re.Pattern[str], value: str | None) -> bool:
    if value is None:
        return False
    m = pattern.search(value)
    if m is None:
        return False
    ctx.match = m
    return True
