"""The aiogram 3 front-end: an unchanged ``Dispatcher`` and ``Bot``, driven by tgrunner.

::

    tgrunner run mybot:dp          # the Dispatcher; its Bot is found as described below
    tgrunner run mybot:create      # a factory returning (dp, bot)
    tgrunner run mybot:main        # main() awaiting dp.start_polling(bot); see .entry

    from tgrunner.frontends.aiogram import run
    run(dp, bot)                   # instead of dp.run_polling(bot); see :mod:`.launch`

tgrunner replaces ``start_polling``: each update (a dict) becomes an ``aiogram.types.Update`` and
goes through ``dp.feed_update(bot, update, **workflow_data)`` with the workflow data
``start_polling`` would give (``dispatcher``, ``bots``, ``dp.workflow_data``, extra keyword
arguments), so middlewares, filters, routers, error handlers and FSM storages work unchanged.
A ``TelegramMethod`` returned by a handler is sent, as ``start_polling`` does. An exception
that aiogram's error handlers leave unhandled reaches tgrunner's error hook. Startup and
shutdown hooks run with ``bot=`` and the workflow data; the Bot's session is closed at the end.
``allowed_updates`` defaults to ``dp.resolve_used_update_types()``.

**Which Bot.** The first rule that finds one wins:

1. the Bot given explicitly: ``(dp, bot)`` or ``(dp, [bot])`` from the import string or a
   factory, ``run(dp, bot)``, or the ``bot=`` option;
2. a Bot among the values of ``dp.workflow_data`` (as in ``Dispatcher(bot=bot)``);
3. a Bot among the globals of the module(s) that hold the Dispatcher as a global;
4. none found (the aiogram quickstart creates its Bot inside ``main()``): a new
   ``Bot(token)`` with the token given to tgrunner, said in one INFO log line. Without a
   token that is a ConfigError. (Point tgrunner at ``main`` to run the Bot it creates, with
   its default properties.)

Several distinct Bots at the winning step is a ConfigError: tgrunner runs one bot per
process, so name it with a factory. A ``token`` given to tgrunner is set on that Bot;
the server is the ``api_url`` given to tgrunner, else the Bot session's own server, else
Telegram's.

**The session.** By default (``session="tgrunner"``) a plain ``AiohttpSession`` is replaced by
:class:`~tgrunner.frontends.aiogram.session.TgrunnerSession`, which keeps its timeout, JSON
functions and request middlewares. A session with a proxy, or of another class, is kept.
``session="aiogram"`` always keeps aiogram's own session. tgrunner's session sends the Bot's
calls through the runtime's flood control (``--flood``); aiogram's own session does not.

**Magic filters** (``F.text``, ``F.data == "x"``) are evaluated on the event loop. aiogram runs
every synchronous callable through ``asyncio.to_thread``, which costs a thread hop (about
150 µs) per filter and update; a magic filter is a pure expression, so it needs none.
Synchronous handlers and other synchronous filters keep their thread. aiogram's INFO line per
update (logger ``aiogram.event``) is silenced unless that logger's level was set.

**Keys** follow the FSM strategy (``dp.fsm.strategy``), so two updates that reach the same FSM
storage key are never handled at once. See :func:`fsm_keys`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.strategy import FSMStrategy
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.utils.token import TokenValidationError, validate_token

import tgrunner.frontends.aiogram.compat as compat
from tgrunner.answers import ANSWERS
from tgrunner.errors import ConfigError
from tgrunner.flood.limiter import FloodControl
from tgrunner.frontends import Frontend
from tgrunner.frontends.aiogram.session import TgrunnerSession
from tgrunner.keys import KeyFunc, default_keys

__all__ = [
    "TgrunnerSession",
    "adapt",
    "event_context",
    "find_bot",
    "fsm_keys",
    "inline_magic_filters",
]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
_SESSIONS = ("tgrunner", "aiogram")
_API_SUFFIX = "/bot{token}/{method}"

# -- keys ----------------------------------------------------------------------------------------

_WITH_TOPIC = (
    "message",
    "edited_message",
    "business_message",
    "edited_business_message",
    "guest_message",
)
_CHAT_AND_FROM = ("my_chat_member", "chat_member", "chat_join_request")
_FROM_ONLY = (
    "inline_query",
    "chosen_inline_result",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
)
_CHAT_ONLY = (
    "channel_post",
    "edited_channel_post",
    "message_reaction_count",
    "removed_chat_boost",
    "deleted_business_messages",
)


def _id(obj: Any) -> int | None:
    return None if obj is None else obj["id"]


def _topic(message: Mapping[str, Any]) -> int | None:
    return message.get("message_thread_id") if message.get("is_topic_message") else None


def event_context(update: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    """``(chat_id, user_id, thread_id)`` of an update dict, as aiogram's
    ``UserContextMiddleware.resolve_event_context`` finds them on the parsed Update."""
    for kind, obj in update.items():
        if kind == "update_id":
            continue
        if kind in _WITH_TOPIC:
            return obj["chat"]["id"], _id(obj.get("from")), _topic(obj)
        if kind == "callback_query":
            message = obj.get("message")
            if message is None:
                return None, obj["from"]["id"], None
            # An inaccessible message has date 0 and no topic fields.
            thread = _topic(message) if message.get("date") else None
            return message["chat"]["id"], obj["from"]["id"], thread
        if kind in _CHAT_AND_FROM:
            return obj["chat"]["id"], _id(obj.get("from")), None
        if kind in _FROM_ONLY:
            return None, obj["from"]["id"], None
        if kind in _CHAT_ONLY:
            return obj["chat"]["id"], None, None
        if kind == "message_reaction":
            return obj["chat"]["id"], _id(obj.get("user")), None
        if kind == "poll_answer":
            return _id(obj.get("voter_chat")), _id(obj.get("user")), None
        if kind == "chat_boost":
            source = obj["boost"]["source"]
            user = source["user"]["id"] if source.get("source") == "premium" else None
            return obj["chat"]["id"], user, None
        if kind in ("business_connection", "managed_bot", "subscription"):
            return None, obj["user"]["id"], None
        if kind == "stopped_message_generation":
            return obj["chat"]["id"], None, obj.get("message_thread_id")
        if kind == "poll" or not isinstance(obj, Mapping):
            return None, None, None
        # A kind newer than this table: whatever chat or sender it names.
        chat, sender = obj.get("chat"), obj.get("from") or obj.get("user")
        return (
            chat.get("id") if isinstance(chat, Mapping) else None,
            sender.get("id") if isinstance(sender, Mapping) else None,
            None,
        )
    return None, None, None


def _safe(keys: Callable[[Mapping[str, Any]], tuple[Hashable, ...]]) -> KeyFunc:
    def safe_keys(update: Mapping[str, Any]) -> tuple[Hashable, ...]:
        try:
            return keys(update)
        except (KeyError, TypeError, AttributeError):
            # A payload without the fields the spec requires: the default keys treat it too.
            return default_keys(update)

    safe_keys.__name__ = safe_keys.__qualname__ = keys.__name__
    safe_keys.__doc__ = keys.__doc__
    return safe_keys


def _chat_keys(update: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """USER_IN_CHAT and CHAT: the chat; a user's private chat when there is no chat."""
    message = update.get("message")
    if message is not None:
        return (f"c:{message['chat']['id']}",)
    chat, user, _ = event_context(update)
    if chat is None:
        chat = user
    return default_keys(update) if chat is None else (f"c:{chat}",)


def _user_and_chat_keys(update: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """GLOBAL_USER: the user, then the chat."""
    chat, user, _ = event_context(update)
    if user is None:
        return default_keys(update) if chat is None else (f"c:{chat}",)
    return (f"u:{user}",) if chat is None else (f"u:{user}", f"c:{chat}")


def _topic_keys(update: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """USER_IN_TOPIC and CHAT_TOPIC: the forum topic, else as for CHAT."""
    chat, user, thread = event_context(update)
    if chat is None:
        chat, thread = user, None
    if chat is None:
        return default_keys(update)
    return (f"c:{chat}",) if thread is None else (f"c:{chat}:{thread}",)


_BY_STRATEGY: dict[FSMStrategy, KeyFunc] = {
    FSMStrategy.USER_IN_CHAT: _safe(_chat_keys),
    FSMStrategy.CHAT: _safe(_chat_keys),
    FSMStrategy.GLOBAL_USER: _safe(_user_and_chat_keys),
    FSMStrategy.USER_IN_TOPIC: _safe(_topic_keys),
    FSMStrategy.CHAT_TOPIC: _safe(_topic_keys),
}


def fsm_keys(strategy: FSMStrategy) -> KeyFunc:
    """The key function that keeps updates sharing an FSM storage key under ``strategy`` apart,
    and keeps per-chat order. Keys use the names of :mod:`tgrunner.keys`:

    - USER_IN_CHAT, CHAT: ``"c:<chat id>"``. An update with a user and no chat (an inline
      query, a callback from an inline message) gets its user's private chat, ``"c:<user
      id>"``, because aiogram stores its state under that chat.
    - GLOBAL_USER: ``"u:<user id>"`` and ``"c:<chat id>"``, as the state follows the user
      across chats. The user comes first: the first key picks the worker process
      (``--workers``), so a user's state stays in one process whatever the chat.
    - USER_IN_TOPIC, CHAT_TOPIC: ``"c:<chat id>:<thread id>"`` for a forum topic message, so
      topics run concurrently; otherwise as for CHAT.

    Updates with neither chat nor user (a poll) get :func:`tgrunner.keys.default_keys`.
    """
    return _BY_STRATEGY[strategy]


# -- finding the Bot -----------------------------------------------------------------------------


def _unique(bots: Iterable[tuple[Bot, str]]) -> list[tuple[Bot, str]]:
    seen: list[tuple[Bot, str]] = []
    for bot, name in bots:
        if all(bot is not other for other, _ in seen):
            seen.append((bot, name))
    return seen


def _bots_beside(dp: Dispatcher) -> list[tuple[Bot, str]]:
    """Bots held as globals by the modules that hold ``dp`` as a global."""
    found: list[tuple[Bot, str]] = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        try:
            if any(v is dp for v in namespace.values()):
                found.extend(
                    (v, f"{module.__name__}.{k}")
                    for k, v in list(namespace.items())
                    if isinstance(v, Bot)
                )
        except RuntimeError:  # a module being imported by another thread changed size
            continue
    return _unique(found)


def _one_bot(candidates: list[tuple[Bot, str]], where: str) -> Bot | None:
    if len(candidates) > 1:
        names = ", ".join(name for _, name in candidates)
        raise ConfigError(
            f"Found {len(candidates)} aiogram Bots {where} ({names}); tgrunner runs one bot per "
            "process. Point it at a factory returning (dispatcher, bot)."
        )
    return candidates[0][0] if candidates else None


def _as_bots(value: Any) -> list[Bot] | None:
    if isinstance(value, Bot):
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(b, Bot) for b in value):
        return list(value)
    return None


def _not_a_dispatcher(obj: Any, name: str) -> str:
    where = name.partition(":")[0] if ":" in name else "mybot"
    if isinstance(obj, Router):
        return (
            f"{name} is an aiogram Router, not a Dispatcher: point at the Dispatcher it is "
            f"included in (dp.include_router(router)), e.g. {where}:dp"
        )
    if isinstance(obj, Bot):
        return (
            f"{name} is an aiogram Bot: point at the Dispatcher instead (tgrunner finds the "
            "Bot beside it), or at a factory returning (dispatcher, bot)"
        )
    return (
        f"tgrunner runs an aiogram Dispatcher, not a {type(obj).__name__} ({name}). Point it at "
        "the Dispatcher, or at a factory returning (dispatcher, bot)."
    )


def _split(
    obj: Any, bot: Bot | Sequence[Bot] | None, name: str = "the target"
) -> tuple[Dispatcher, Bot | None]:
    """The Dispatcher and the explicitly given Bot (None: find it)."""
    given: list[Bot] = []
    if isinstance(obj, tuple | list):
        dps = [item for item in obj if isinstance(item, Dispatcher)]
        rest = [_as_bots(item) for item in obj if not isinstance(item, Dispatcher)]
        if len(dps) != 1 or None in rest:
            raise ConfigError(
                "An aiogram target that is a tuple must be (dispatcher, bot) or "
                f"(dispatcher, [bot]); got ({', '.join(type(i).__name__ for i in obj)})."
            )
        obj = dps[0]
        given = [b for bots in rest for b in bots or ()]
    if not isinstance(obj, Dispatcher):
        raise ConfigError(_not_a_dispatcher(obj, name))
    if bot is not None:
        bots = _as_bots(bot)
        if bots is None:
            raise ConfigError(f"bot= takes an aiogram Bot or a list of them, not {bot!r}")
        given.extend(bots)
    if given:
        return obj, _one_bot(_unique((b, f"Bot(id={b.id})") for b in given), "given")
    return obj, None


def _found_bot(dp: Dispatcher) -> Bot | None:
    in_data = [
        (v, f"dp.workflow_data[{k!r}]") for k, v in dp.workflow_data.items() if isinstance(v, Bot)
    ]
    found = _one_bot(_unique(in_data), "in the dispatcher's workflow_data")
    if found is None:
        found = _one_bot(_bots_beside(dp), "beside the dispatcher")
    return found


def find_bot(dp: Dispatcher) -> Bot:
    """The Bot to run ``dp`` with, by rules 2 and 3 of the module docstring."""
    found = _found_bot(dp)
    if found is None:
        raise ConfigError(
            "Found no aiogram Bot for the Dispatcher: none in its workflow_data, none beside "
            "it in its module. Pass the token (--token, or BOT_TOKEN) and tgrunner creates "
            "one, or point tgrunner at main() or at a factory returning (dispatcher, bot)."
        )
    return found


def _bot_for(dp: Dispatcher, token: str | None, name: str) -> Bot:
    """Rules 2 and 3, else rule 4: a Bot created with ``token``."""
    found = _found_bot(dp)
    if found is not None:
        return found
    if not token:
        raise ConfigError(
            f"Found no aiogram Bot beside {name} (the aiogram quickstart creates it inside "
            "main()), and no token to create one: pass --token, or set BOT_TOKEN"
        )
    try:
        validate_token(token)
    except TokenValidationError as exc:
        raise ConfigError(f"The bot token is not valid for aiogram: {exc}") from None
    log.info(
        "no aiogram Bot found beside %s; created one with the token given to tgrunner "
        "(--token, $TGRUNNER_TOKEN or $BOT_TOKEN)",
        name,
    )
    return Bot(token)


# -- the Bot's server, token and session ---------------------------------------------------------


def _server_url(api: TelegramAPIServer) -> str:
    if not api.base.endswith(_API_SUFFIX):
        raise ConfigError(
            f"The Bot's API server {api.base!r} does not end in {_API_SUFFIX!r}, so tgrunner "
            "cannot poll it; pass api_url (--api-url) explicitly."
        )
    return api.base[: -len(_API_SUFFIX)]


def _set_token(bot: Bot, token: str) -> None:
    try:
        validate_token(token)
    except TokenValidationError as exc:
        raise ConfigError(f"The bot token is not valid for aiogram: {exc}") from None
    # The user's handlers hold this very Bot object, so it is changed in place.
    compat.set_bot_token(bot, token)


def _tgrunner_session(old: Any, api: TelegramAPIServer) -> TgrunnerSession | None:
    """A TgrunnerSession replacing ``old``, or None when ``old`` must be kept."""
    if type(old) is not AiohttpSession or old.proxy is not None:
        log.info("keeping the Bot's own %s session (a proxy or a custom class)", type(old).__name__)
        return None
    new = TgrunnerSession(
        api,
        timeout=old.timeout,
        pool_size=compat.aiohttp_pool_limit(old),
    )
    if old.json_loads is not json.loads:
        new.json_loads = old.json_loads
    if old.json_dumps is not json.dumps:
        new.json_dumps = old.json_dumps
    new.middleware = old.middleware
    return new


# -- the dispatcher ------------------------------------------------------------------------------


def inline_magic_filters(dp: Dispatcher) -> int:
    """Evaluate the magic filters of ``dp``'s routers on the event loop instead of in a thread
    (see the module docstring); return how many were changed. Safe to call again."""
    changed = 0
    for flt in compat.filter_objects(dp):
        if compat.is_sync_magic_filter(flt):
            compat.run_filter_on_loop(flt)
            changed += 1
    return changed


def _quiet_event_log() -> None:
    event_log = logging.getLogger(compat.EVENT_LOGGER)
    if event_log.level == logging.NOTSET:
        event_log.setLevel(logging.WARNING)


# -- the front-end -------------------------------------------------------------------------------


def adapt(
    obj: Any,
    *,
    token: str | None = None,
    api_url: str | None = None,
    session: str = "tgrunner",
    bot: Bot | Sequence[Bot] | None = None,
    data: Mapping[str, Any] | None = None,
    name: str | None = None,
    flood: FloodControl | None = None,
    **_: Any,
) -> Frontend:
    """The :class:`~tgrunner.frontends.Frontend` that drives an aiogram Dispatcher.

    - ``obj``: a ``Dispatcher``, or ``(dispatcher, bot)`` / ``(dispatcher, [bot])``.
    - ``token`` / ``api_url`` (default None: the Bot's own): set on the Bot and its session.
    - ``session``: ``"tgrunner"`` (default) or ``"aiogram"``; see the module docstring.
    - ``bot``: the Bot, when ``obj`` is a bare Dispatcher (default: found by the rules above).
    - ``data``: extra workflow data for handlers, like ``start_polling``'s keyword arguments.
    - ``name``: the target as the user named it (``"mybot:dp"``), for messages.
    - ``flood``: the process's flood control, for the Bot's session when it is tgrunner's
      (default None: none; aiogram's own session never has any).

    Other options are for other front-ends and ignored.
    """
    if session not in _SESSIONS:
        raise ConfigError(f"session must be one of {', '.join(_SESSIONS)}, not {session!r}")
    name = name or "the target"
    dp, the_bot = _split(obj, bot, name)
    if the_bot is None:
        the_bot = _bot_for(dp, token, name)
    if token and token != the_bot.token:
        _set_token(the_bot, token)
    api = the_bot.session.api
    if api_url:
        api = TelegramAPIServer.from_base(
            api_url, is_local=api.is_local, wrap_local_file=api.wrap_local_file
        )
    server = _server_url(api)
    replaced = None
    if session == "tgrunner" and isinstance(the_bot.session, TgrunnerSession):
        the_bot.session.api = api
    elif session == "tgrunner" and (new := _tgrunner_session(the_bot.session, api)) is not None:
        replaced, the_bot.session = the_bot.session, new
    else:
        the_bot.session.api = api
    if isinstance(the_bot.session, TgrunnerSession):
        the_bot.session.flood = flood
    inline_magic_filters(dp)
    _quiet_event_log()
    lifecycle = _Lifecycle(dp, the_bot, dict(data or {}), replaced)
    fsm_on = dp.fsm in dp.update.outer_middleware
    return Frontend(
        handler=lifecycle.handler(),
        token=the_bot.token,
        api_url=server,
        keys=fsm_keys(dp.fsm.strategy) if fsm_on else None,
        allowed_updates=tuple(dp.resolve_used_update_types()),
        startup=lifecycle.startup,
        shutdown=lifecycle.shutdown,
        name="aiogram",
    )


class _Lifecycle:
    """What ``start_polling`` does around the updates: workflow data, hooks, closing."""

    def __init__(self, dp: Dispatcher, bot: Bot, extra: dict[str, Any], replaced: Any) -> None:
        self.dp = dp
        self.bot = bot
        self.extra = extra
        self.replaced = replaced
        self.data = self._workflow_data()

    def _workflow_data(self) -> dict[str, Any]:
        data = {"dispatcher": self.dp, "bots": (self.bot,), **self.dp.workflow_data, **self.extra}
        data.pop("bot", None)
        return data

    def handler(self) -> Callable[[JSON, Any], Any]:
        dp, bot = self.dp, self.bot
        validate = Update.model_validate
        feed = dp.feed_update
        context = compat.bot_context(bot)
        lifecycle = self

        async def handle_update(update: JSON, _client: Any) -> None:
            event = validate(update, context=context)
            response = await feed(bot, event, **lifecycle.data)
            if isinstance(response, TelegramMethod):
                # A direct-mode webhook carries it in its answer; else it is sent, as
                # start_polling sends it (errors are logged, not raised).
                if ANSWERS.enabled and await _as_answer(bot, update["update_id"], response):
                    return
                await dp.silent_call_request(bot, response)

        return handle_update

    async def startup(self) -> None:
        if self.replaced is not None:
            replaced, self.replaced = self.replaced, None
            await replaced.close()  # a no-op unless the user's code had used it
        # Taken at start, as start_polling does: hooks may add to dp.workflow_data, which
        # feed_update merges again on every update.
        self.data = self._workflow_data()
        try:
            await self.dp.emit_startup(bot=self.bot, **self.data)
            inline_magic_filters(self.dp)  # the hooks may have added handlers
            me = await self.bot.me()
        except BaseException:
            await self.bot.session.close()
            raise
        log.info("aiogram dispatcher runs on tgrunner for bot @%s id=%d", me.username, me.id)

    async def shutdown(self) -> None:
        try:
            await self.dp.emit_shutdown(bot=self.bot, **self.data)
        finally:
            await self.bot.session.close()


async def _as_answer(bot: Any, update_id: int, method: TelegramMethod[Any]) -> bool:
    """Offer a handler's returned method as the webhook's answer: JSON parameters only (a
    file upload cannot ride in it)."""
    session = bot.session
    encode = getattr(session, "_encode", None)
    if encode is None:  # not tgrunner's session
        return False
    body, content_type = await encode(bot, method)
    if not content_type.startswith("application/json"):
        return False
    params = orjson.loads(body) if body else {}
    return ANSWERS.offer(update_id, compat.method_name(method), params)
