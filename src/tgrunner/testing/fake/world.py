"""FakeTelegram's state: bots, chats, message history, update queues and webhook settings.

:class:`State` implements the :class:`~tgrunner.testing.fake.base.World` protocol that simulated
users drive, and holds what the Bot API methods read and change.

Threading. The state belongs to the event loop that serves HTTP. :meth:`State.bind` records that
loop and its thread. Every public method of :class:`State` checks the calling thread: on the
loop's thread (or before any loop is bound) it runs directly; from any other thread it is
scheduled on the loop with ``loop.call_soon_threadsafe`` and the caller blocks until it has run,
then gets its result or its exception. So simulated users may be driven from a test's own thread
while the server runs in a background thread ("thread mode"), and every mutation still happens
on one thread, in order, without locks.

Update semantics follow the reference server (tdlib/telegram-bot-api):

- ``allowed_updates`` filters when an update is *created*, not when it is fetched; an update of a
  kind the bot did not ask for is never queued.
- An absent ``allowed_updates`` keeps the previous setting; an empty list, or a list naming no
  known kind, restores the default (every kind except ``chat_member``, ``message_reaction`` and
  ``message_reaction_count``); names are matched case-insensitively; a value that is not a list
  of strings keeps the previous setting.
- ``getUpdates`` with ``offset`` confirms (forgets) every update below it; a negative offset keeps
  only the last ``-offset`` updates and forgets the earlier ones.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from tgrunner.testing.botapi import Spec, load_spec
from tgrunner.testing.fake.base import ApiError

__all__ = [
    "DEFAULT_EXCLUDED_KINDS",
    "BotState",
    "State",
    "StoredFile",
    "WebhookConfig",
    "chat_key",
    "make_token",
]

DEFAULT_EXCLUDED_KINDS = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
"""Update kinds a bot receives only when it names them in ``allowed_updates``."""

_TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

# Message-like update kinds: their payload is a Message that the history should know about.
_MESSAGE_KINDS = frozenset({"message", "channel_post", "business_message", "guest_message"})
_EDIT_KINDS = frozenset({"edited_message", "edited_channel_post", "edited_business_message"})

P = ParamSpec("P")
R = TypeVar("R")


def make_token(rng: random.Random, bot_id: int | None = None) -> str:
    """A token in Telegram's format: ``<bot id>:<35 characters of [A-Za-z0-9_-]>``.

    Real tokens' secret part starts with ``AA``; so does this one.
    """
    if bot_id is None:
        bot_id = rng.randint(6_000_000_000, 8_499_999_999)
    secret = "AA" + "".join(rng.choice(_TOKEN_ALPHABET) for _ in range(33))
    return f"{bot_id}:{secret}"


def chat_key(update: dict[str, Any]) -> int | None:
    """The key under which webhook delivery keeps an update's order: its chat, else its user;
    a callback query's is its user (who pressed), whatever chat the button is in.

    Like the reference server's webhook queues, updates with the same key are delivered one at a
    time; ``None`` means the update is not ordered against any other.
    """
    for kind, payload in update.items():
        if kind == "update_id" or not isinstance(payload, dict):
            continue
        if kind == "callback_query":
            presser = payload.get("from")
            return int(presser["id"]) if isinstance(presser, dict) and "id" in presser else None
        chat = payload.get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return int(chat["id"])
        message = payload.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            return int(message["chat"]["id"])
        user = payload.get("from") or payload.get("user")
        if isinstance(user, dict) and "id" in user:
            return int(user["id"])
        return None
    return None


def _on_loop(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a :class:`State` method on the state's loop; block a foreign thread until it has."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        self = args[0]
        loop: asyncio.AbstractEventLoop | None = self._loop  # type: ignore[attr-defined]
        if (
            loop is None
            or self._thread == threading.get_ident()  # type: ignore[attr-defined]
            or loop.is_closed()
            or not loop.is_running()
        ):
            return fn(*args, **kwargs)
        done: concurrent.futures.Future[R] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed back to the calling thread as is
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result()

    return wrapper


@dataclass(slots=True)
class WebhookConfig:
    """A bot's webhook as ``setWebhook`` left it. ``max_connections`` defaults to 40."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    has_custom_certificate: bool = False


@dataclass(slots=True)
class StoredFile:
    """A file known to the fake: sent by the bot or by a simulated user."""

    file_id: str
    file_unique_id: str
    file_size: int
    file_path: str
    data: bytes | None = field(default=None, repr=False)


@dataclass(slots=True, eq=False)
class BotState:
    """One bot's side of the world: its user, its update queue and its webhook."""

    token: str
    user: dict[str, Any]
    next_update_id: int
    allowed: frozenset[str]
    allowed_explicit: tuple[str, ...] | None = None
    pending: deque[dict[str, Any]] = field(default_factory=deque)
    webhook: WebhookConfig | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    # The long poll that waits for updates; a newer waiting poll fails it with 409.
    long_poll: asyncio.Future[None] | None = None
    # Called after an update is queued (the webhook deliverer's kick); None when polling.
    on_update: Callable[[], None] | None = None
    # Updates the webhook deliverer has taken from ``pending`` and not yet delivered.
    webhook_backlog: Callable[[], int] | None = None
    logged_out: bool = False

    @property
    def pending_update_count(self) -> int:
        backlog = self.webhook_backlog() if self.webhook_backlog is not None else 0
        return len(self.pending) + backlog


class State:
    """Everything FakeTelegram knows, kept in plain dicts shaped like Bot API objects.

    ``seed`` (default 0) makes ids, tokens and random values repeatable. ``token`` (default: a
    generated one) is the primary bot's; more bots can be added with :meth:`add_bot`.
    ``clock`` (default ``time.time``) gives the dates of messages and errors.
    ``history_limit`` (default None: keep all) bounds the messages kept per chat, so long
    benchmarks run in flat memory; the oldest are forgotten first.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        seed: int = 0,
        spec: Spec | None = None,
        clock: Callable[[], float] = time.time,
        history_limit: int | None = None,
    ) -> None:
        self.spec = spec or load_spec()
        self.rng = random.Random(seed)
        self.clock = clock
        self.history_limit = history_limit
        self.kinds = tuple(self.spec.update_kinds())
        self._kinds_lower = {k.lower(): k for k in self.kinds}
        self.default_allowed = frozenset(self.kinds) - DEFAULT_EXCLUDED_KINDS
        self.bots: dict[str, BotState] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.chats_by_username: dict[str, int] = {}
        self.users: dict[int, dict[str, Any]] = {}
        # chat id -> user id -> ChatMember object
        self.members: dict[int, dict[int, dict[str, Any]]] = {}
        self.messages: dict[int, dict[int, dict[str, Any]]] = {}
        self._last_message_id: dict[int, int] = {}
        # chat id -> messages the bot sent there, in order (what ``replies()`` returns)
        self.bot_messages: dict[int, list[dict[str, Any]]] = {}
        # callback/inline/shipping/pre-checkout query id -> {"query": ..., "answer": ... | None}
        self.queries: dict[str, dict[str, Any]] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self._file_seq = itertools.count(1)
        self._path_seq = itertools.count(1)
        self._watchers: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self.primary = self._new_bot(token)

    # -- threading -------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Make ``loop`` (running on the calling thread) the owner of this state; None unbinds."""
        self._loop = loop
        self._thread = threading.get_ident() if loop is not None else None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    # -- bots ------------------------------------------------------------------------------

    def _new_bot(self, token: str | None) -> BotState:
        if token is None:
            token = make_token(self.rng)
        head = token.partition(":")[0]
        bot_id = int(head) if head.isdigit() else self.rng.randint(6_000_000_000, 8_499_999_999)
        user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Test Bot",
            "username": f"test_{bot_id}_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        bot = BotState(
            token=token,
            user=user,
            # Real update ids are large and start at an arbitrary point.
            next_update_id=100_000_000 + self.rng.randrange(800_000_000),
            allowed=self.default_allowed,
        )
        self.bots[token] = bot
        self.users[bot_id] = user
        return bot

    @_on_loop
    def add_bot(self, token: str | None = None) -> BotState:
        """Register another bot (default: a generated token) and return its state."""
        if token in self.bots:
            return self.bots[token]
        return self._new_bot(token)

    @property
    def bot_user(self) -> dict[str, Any]:
        """The primary bot's User object."""
        return self.primary.user

    @property
    def token(self) -> str:
        return self.primary.token

    def bot(self, token: str) -> BotState | None:
        """The bot with this token, or None (the caller answers 401)."""
        return self.bots.get(token)

    # -- time and ids ----------------------------------------------------------------------

    def now(self) -> int:
        """The current Unix time in whole seconds, as Telegram dates are."""
        return int(self.clock())

    @_on_loop
    def next_message_id(self, chat_id: int) -> int:
        """The next message id of a chat: 1, 2, 3… in each chat, as in private chats and groups."""
        mid = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = mid
        return mid

    def new_file_ids(self, kind: str = "document") -> tuple[str, str]:
        """A fresh ``(file_id, file_unique_id)`` pair that looks like Telegram's."""
        n = next(self._file_seq)
        raw = kind.encode()[:4].ljust(4, b"_") + n.to_bytes(8, "big") + self.rng.randbytes(36)
        unique = b"\x01" + n.to_bytes(8, "big") + self.rng.randbytes(3)
        return (
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(unique).decode().rstrip("="),
        )

    # -- chats, users and messages ---------------------------------------------------------

    @_on_loop
    def register_chat(self, chat: dict[str, Any]) -> None:
        """Make a chat known (a private chat's user becomes known too). Idempotent."""
        chat_id = int(chat["id"])
        self.chats[chat_id] = chat
        username = chat.get("username")
        if username:
            self.chats_by_username[str(username).lower()] = chat_id
        self.messages.setdefault(chat_id, {})
        if chat.get("type") == "private":
            self.users.setdefault(
                chat_id,
                {
                    k: v
                    for k, v in chat.items()
                    if k in ("id", "first_name", "last_name", "username")
                }
                | {"is_bot": False},
            )

    @_on_loop
    def register_user(self, user: dict[str, Any]) -> None:
        """Make a user known, for ``getChatMember`` and friends."""
        self.users[int(user["id"])] = user

    @_on_loop
    def set_member(self, chat_id: int, member: dict[str, Any]) -> None:
        """Record a ChatMember object (``{"status": ..., "user": {...}, ...}``) for a chat."""
        user = member["user"]
        self.users.setdefault(int(user["id"]), user)
        self.members.setdefault(chat_id, {})[int(user["id"])] = member

    @_on_loop
    def remove_member(self, chat_id: int, user_id: int) -> None:
        """Forget a user's membership of a chat (they left or were banned)."""
        self.members.get(chat_id, {}).pop(user_id, None)

    def resolve_chat(self, chat_id: int | str) -> dict[str, Any]:
        """The chat for a ``chat_id`` parameter (an id or ``@username``).

        Raises ``ApiError(400, "Bad Request: chat not found")`` for an unknown chat.
        """
        if isinstance(chat_id, str):
            if chat_id.startswith("@"):
                found = self.chats_by_username.get(chat_id[1:].lower())
                if found is not None:
                    return self.chats[found]
                raise ApiError(400, "Bad Request: chat not found")
            try:
                chat_id = int(chat_id)
            except ValueError:
                raise ApiError(400, "Bad Request: chat not found") from None
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    @_on_loop
    def remember_message(self, message: dict[str, Any]) -> None:
        """Store (or replace) a message in its chat's history; its sender becomes known."""
        chat_id = int(message["chat"]["id"])
        if chat_id not in self.chats:
            self.register_chat(message["chat"])
        mid = int(message["message_id"])
        history = self.messages.get(chat_id)
        if history is None:
            history = self.messages[chat_id] = {}
        history[mid] = message
        if mid > self._last_message_id.get(chat_id, 0):
            self._last_message_id[chat_id] = mid
        limit = self.history_limit
        if limit is not None and len(history) > limit:
            # Oldest first: dicts keep insertion order.
            del history[next(iter(history))]
        sender = message.get("from")
        if sender is not None:
            self.users.setdefault(int(sender["id"]), sender)

    @_on_loop
    def get_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A chat's message by id, or None when it never existed or was deleted."""
        return self.messages.get(chat_id, {}).get(message_id)

    def forget_message(self, chat_id: int, message_id: int) -> bool:
        """Delete a message from history; False if it was not there."""
        return self.messages.get(chat_id, {}).pop(message_id, None) is not None

    def record_bot_message(self, message: dict[str, Any]) -> None:
        """Store a message the bot sent, and add it to its chat's replies."""
        self.remember_message(message)
        sent = self.bot_messages.get(int(message["chat"]["id"]))
        if sent is None:
            sent = self.bot_messages[int(message["chat"]["id"])] = []
        sent.append(message)
        limit = self.history_limit
        if limit is not None and len(sent) > 2 * limit:
            # Trimmed in halves so the cost per message stays constant.
            del sent[:-limit]
        self.changed()

    @_on_loop
    def replies(self, chat_id: int) -> list[dict[str, Any]]:
        """The messages the bot sent in a chat, in the order it sent them."""
        return list(self.bot_messages.get(chat_id, ()))

    # -- files -----------------------------------------------------------------------------

    def add_file(
        self, kind: str, data: bytes | None = None, size: int | None = None, ext: str = ""
    ) -> StoredFile:
        """Store a file and give it ids and a download path like ``photos/file_3.jpg``."""
        file_id, unique = self.new_file_ids(kind)
        n = next(self._path_seq)
        folder = {"photo": "photos", "video_note": "video_notes"}.get(kind, kind + "s")
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            file_size=len(data) if data is not None else (size or 1024 + n),
            file_path=f"{folder}/file_{n}{ext}",
            data=data,
        )
        self.files[file_id] = stored
        self.files_by_path[stored.file_path] = stored
        return stored

    # -- updates ---------------------------------------------------------------------------

    @_on_loop
    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an update of ``kind`` for the primary bot and return it (see :meth:`push_to`)."""
        return self.push_to(self.primary, kind, payload)

    def push_to(self, bot: BotState, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Give the update the bot's next ``update_id``; queue it if ``allowed_updates`` admit it.

        Like the reference server, an update of a kind the bot did not subscribe to is dropped
        at creation (its id is still used up). Waiting long polls and the webhook are woken.
        Queries (callback, inline, shipping, pre-checkout) become known so they can be answered.
        """
        if kind not in self._kinds_lower.values():
            raise ValueError(f"unknown update kind {kind!r}; expected one of {self.kinds}")
        update = {"update_id": bot.next_update_id, kind: payload}
        bot.next_update_id += 1
        if kind in _MESSAGE_KINDS or kind in _EDIT_KINDS:
            self.remember_message(payload)
        elif kind in ("callback_query", "inline_query", "shipping_query", "pre_checkout_query"):
            self.queries[str(payload["id"])] = {"kind": kind, "query": payload, "answer": None}
        if kind in bot.allowed and not bot.logged_out:
            bot.pending.append(update)
            self._wake_poll(bot)
            if bot.on_update is not None:
                bot.on_update()
        self.changed()
        return update

    def _wake_poll(self, bot: BotState) -> None:
        poll = bot.long_poll
        if poll is not None:
            bot.long_poll = None
            if not poll.done():
                poll.set_result(None)

    def set_allowed_updates(self, bot: BotState, allowed: object) -> None:
        """Apply an ``allowed_updates`` parameter with the reference server's rules.

        None (absent) or a value that is not a list of strings keeps the setting; a list naming
        no known kind (an empty one included) restores the default.
        """
        if allowed is None or not isinstance(allowed, list):
            return
        if not all(isinstance(k, str) for k in allowed):
            return
        chosen = [self._kinds_lower[k.lower()] for k in allowed if k.lower() in self._kinds_lower]
        if not chosen:
            bot.allowed = self.default_allowed
            bot.allowed_explicit = None
        else:
            bot.allowed = frozenset(chosen)
            bot.allowed_explicit = tuple(k for k in self.kinds if k in bot.allowed)

    @_on_loop
    def restart_update_ids(self, at: int, bot: BotState | None = None) -> None:
        """Restart the bot's update ids at ``at``, as Telegram does at random after a week
        without updates (default: the primary bot). Until ids pass the offset a poller holds,
        that offset confirms nothing, as on the real server."""
        (bot or self.primary).next_update_id = at

    def take_updates(self, bot: BotState, offset: int, limit: int) -> list[dict[str, Any]]:
        """Confirm by ``offset`` (negative: keep the last ``-offset``), then return ≤ ``limit``.

        An offset past every id given out (ids restarted lower since) confirms nothing.
        """
        pending = bot.pending
        if offset > bot.next_update_id:
            offset = 0
        if offset < 0:
            while len(pending) > -offset:
                pending.popleft()
        elif offset > 0:
            while pending and pending[0]["update_id"] < offset:
                pending.popleft()
        if limit >= len(pending):
            return list(pending)
        return list(itertools.islice(pending, limit))

    def drop_pending(self, bot: BotState) -> None:
        """Forget every queued update (``drop_pending_updates``)."""
        bot.pending.clear()

    @_on_loop
    def pending_count(self, bot: BotState | None = None) -> int:
        """Updates waiting for ``getUpdates`` or webhook delivery (default: the primary bot)."""
        return (bot or self.primary).pending_update_count

    def webhook_info(self, bot: BotState) -> dict[str, Any]:
        """A WebhookInfo object for the bot; ``url`` is empty while it polls."""
        hook = bot.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": bool(hook and hook.has_custom_certificate),
            "pending_update_count": bot.pending_update_count,
        }
        if hook is not None:
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
            info["max_connections"] = hook.max_connections
        if bot.last_error_date is not None:
            info["last_error_date"] = bot.last_error_date
            info["last_error_message"] = bot.last_error_message or ""
        if bot.allowed_explicit is not None:
            info["allowed_updates"] = list(bot.allowed_explicit)
        return info

    # -- change notification ---------------------------------------------------------------

    def watch(self) -> asyncio.Future[None]:
        """A future resolved at the next :meth:`changed` call (a request or update happened)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append(fut)
        return fut

    def changed(self) -> None:
        """Wake everything waiting in :meth:`watch`; cheap when nothing waits."""
        if self._watchers:
            watchers, self._watchers = self._watchers, []
            for fut in watchers:
                if not fut.done():
                    fut.set_result(None)

    def known_query(self, query_id: str) -> dict[str, Any] | None:
        """The record of a query the bot may answer, or None."""
        return self.queries.get(query_id)

    def iter_chats(self) -> Iterable[dict[str, Any]]:
        return self.chats.values()
