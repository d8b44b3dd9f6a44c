"""Every use of aiogram's private internals by tgrunner, one small function each.

aiogram 3 has no public way to do these things. Each function names what it relies on and what
happens when a later aiogram no longer has it; ``tests/frontends/aiogram/test_compat.py`` runs
each one against the installed aiogram and fails, naming the internal, when it moved.

What tgrunner needs and aiogram offers publicly is used directly elsewhere (``Bot.token``,
``AiohttpSession.proxy`` and ``.timeout``, ``BaseSession.prepare_value`` and
``check_response``, ``Dispatcher.feed_update``, ``Router.observers``, …).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from aiogram import Dispatcher as _Dispatcher
from aiogram.dispatcher.event.handler import FilterObject

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.base import BaseSession
    from aiogram.methods import TelegramMethod

__all__ = [
    "EVENT_LOGGER",
    "aiohttp_pool_limit",
    "bot_context",
    "filter_objects",
    "is_sync_magic_filter",
    "memory_storage_records",
    "method_name",
    "method_returns",
    "polling_calls",
    "prepare_unencoded",
    "run_filter_on_loop",
    "set_bot_token",
]

log = logging.getLogger(__name__)

EVENT_LOGGER = "aiogram.event"
"""The logger aiogram's dispatcher writes its INFO line per update to (``aiogram.loggers.event``).
Should the name change, tgrunner's silencing of it does nothing and those lines appear."""


def set_bot_token(bot: Bot, token: str) -> None:
    """Give ``bot`` another token in place (the user's handlers hold this very object).

    Relies on ``Bot.__init__`` keeping the token in the name-mangled ``Bot.__token`` (read by
    the ``token`` and ``id`` properties) and the cached ``getMe`` answer in ``Bot._me``. Should
    they move, ``bot.token`` would keep the old value: this raises RuntimeError instead.
    """
    if not hasattr(bot, "_Bot__token") or not hasattr(bot, "_me"):
        raise RuntimeError(
            "This aiogram keeps the Bot token elsewhere than Bot._Bot__token / Bot._me, so "
            "tgrunner cannot set it; create the Bot with the token instead of passing --token."
        )
    bot._Bot__token = token
    bot._me = None
    if bot.token != token:
        raise RuntimeError("Setting Bot._Bot__token did not change Bot.token in this aiogram.")


def bot_context(bot: Bot) -> dict[str, Any]:
    """The pydantic validation context that binds parsed aiogram objects to ``bot``, so that
    shortcuts such as ``message.answer()`` work: ``Update.model_validate(data, context=...)``.

    Relies on aiogram's ``BotContextController.model_post_init`` reading the ``"bot"`` key of
    the context (as ``Dispatcher.feed_raw_update`` and ``BaseSession.check_response`` pass
    it). Should the key change, objects come unbound and their shortcuts raise; the tests
    catch it.
    """
    return {"bot": bot}


def aiohttp_pool_limit(session: Any, default: int = 100) -> int:
    """The connection limit an ``AiohttpSession`` was created with (its ``limit=``).

    Relies on ``AiohttpSession._connector_init["limit"]``, the keyword arguments of its aiohttp
    ``TCPConnector``. When missing, ``default`` (aiogram's own default, 100) is returned.
    """
    init = getattr(session, "_connector_init", None)
    limit = init.get("limit") if isinstance(init, dict) else None
    return int(limit) if limit else default


def prepare_unencoded(session: BaseSession, value: Any, bot: Bot, files: dict[str, Any]) -> Any:
    """``session.prepare_value`` for a request field, leaving dicts and lists as Python values
    (not JSON strings), so the whole call can be encoded as one JSON object.

    Relies on the private keyword ``_dumps_json=False`` of ``BaseSession.prepare_value``. A
    TypeError (the keyword is gone) surfaces on the first call of the Bot; the tests catch it.
    """
    return session.prepare_value(value, bot=bot, files=files, _dumps_json=False)


def method_name(method: TelegramMethod[Any]) -> str:
    """The Bot API method name of an aiogram method object (``"sendMessage"``).

    Relies on the ``__api_method__`` class attribute every ``TelegramMethod`` declares (as
    aiogram's own sessions use it). When missing, AttributeError on the first call.
    """
    name: str = method.__api_method__
    return name


def method_returns(method: TelegramMethod[Any]) -> Any:
    """The result type of an aiogram method object, as ``Response[...]`` is parametrised with.

    Relies on the ``__returning__`` class attribute of ``TelegramMethod`` (what
    ``BaseSession.check_response`` uses). When missing, AttributeError on the first call.
    """
    return method.__returning__


def filter_objects(dp: Dispatcher) -> Iterator[FilterObject]:
    """Every ``FilterObject`` of ``dp``'s routers: observer-wide filters
    (``router.message.filter(...)``) and each handler's own.

    Relies on ``TelegramEventObserver._handler``, the pseudo-handler that holds the observer's
    own filters; without it those filters are not yielded (they keep aiogram's thread hop).
    Handler filters come from public attributes (``chain_tail``, ``observers``, ``handlers``,
    ``filters``).
    """
    for router in dp.chain_tail:
        for observer in router.observers.values():
            for handler in (getattr(observer, "_handler", None), *observer.handlers):
                for flt in getattr(handler, "filters", None) or ():
                    if isinstance(flt, FilterObject):
                        yield flt


def is_sync_magic_filter(flt: FilterObject) -> bool:
    """Whether ``flt`` is a magic filter (``F.text``) that aiogram runs in a thread.

    Relies on ``FilterObject.magic`` (set when the filter is a ``MagicFilter``) and
    ``CallableObject.awaitable`` (False: ``CallableObject.call`` uses ``asyncio.to_thread``).
    Without either, False: nothing is changed and the thread hop stays.
    """
    return getattr(flt, "magic", None) is not None and getattr(flt, "awaitable", True) is False


def run_filter_on_loop(flt: FilterObject) -> None:
    """Make aiogram await ``flt`` on the event loop instead of ``asyncio.to_thread``.

    Relies on ``CallableObject.call`` awaiting ``callback(...)`` when ``awaitable`` is True,
    and on the keyword arguments it passes being chosen by ``params`` / ``varkw``, computed
    once from the original callback (so the wrapper needs no signature of its own). Should
    ``call`` change, the test of this function fails; at run time the filter would be
    awaited or called as aiogram then does.
    """
    flt.callback = _on_loop(flt.callback)
    flt.awaitable = True


def memory_storage_records(storage: Any) -> MutableMapping[Any, Any]:
    """The records of an aiogram ``MemoryStorage`` (FSM state and data, by ``StorageKey``), so
    tests can empty it between runs.

    Relies on ``MemoryStorage.storage``, the ``defaultdict`` its ``__init__`` creates; it is not
    documented (aiogram has no public way to empty a storage). Should it move, RuntimeError
    says so instead of letting FSM state leak from one test into the next.
    """
    records = getattr(storage, "storage", None)
    if not isinstance(records, MutableMapping):
        raise RuntimeError(
            "This aiogram keeps MemoryStorage records elsewhere than MemoryStorage.storage, so "
            "tgrunner cannot reset FSM state; pass reset_state=False, or give each test its "
            "own Dispatcher."
        )
    return records


def _on_loop(resolve: Callable[..., Any]) -> Callable[..., Any]:
    async def resolve_on_loop(*args: Any, **kwargs: Any) -> Any:
        return resolve(*args, **kwargs)

    return resolve_on_loop


# -- entry points ------------------------------------------------------------------------------

_WEBHOOK_MODULE = "aiogram.webhook.aiohttp_server"


def polling_calls(
    start_polling: Callable[[Dispatcher, tuple[Bot, ...], dict[str, Any]], Awaitable[None]],
    run_polling: Callable[[Dispatcher, tuple[Bot, ...], dict[str, Any]], None],
    webhook: Callable[[], None],
) -> contextlib.AbstractContextManager[None]:
    """For the block, ``Dispatcher.start_polling`` and ``Dispatcher.run_polling`` call
    ``start_polling(dp, bots, options)`` / ``run_polling(dp, bots, options)`` instead, with
    ``options`` the keyword arguments the caller passed (bound to aiogram's signature, so a
    wrong call raises aiogram's TypeError), and registering aiogram's aiohttp webhook handler
    (``BaseRequestHandler.register``) calls ``webhook()``.

    Relies on the three being looked up on their classes at call time (they are plain
    methods), and on ``run_polling`` and ``start_polling`` keeping their signatures; the tests
    check both. The webhook handler is patched only when ``aiogram.webhook.aiohttp_server`` is
    imported.
    """
    return _patched(start_polling, run_polling, webhook)


def _explicit(method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound = inspect.signature(method).bind(*args, **kwargs)
    options = dict(bound.arguments)
    options.pop("self", None)
    bots = options.pop("bots", ())
    options.update(options.pop("kwargs", {}))
    return bots, options


@contextlib.contextmanager
def _patched(
    start: Callable[..., Awaitable[None]], run: Callable[..., None], webhook: Callable[[], None]
) -> Iterator[None]:
    original_start = _Dispatcher.start_polling
    original_run = _Dispatcher.run_polling

    async def start_polling(self: Dispatcher, *args: Any, **kwargs: Any) -> None:
        bots, options = _explicit(original_start, (self, *args), kwargs)
        await start(self, bots, options)

    def run_polling(self: Dispatcher, *args: Any, **kwargs: Any) -> None:
        bots, options = _explicit(original_run, (self, *args), kwargs)
        run(self, bots, options)

    handler_class = getattr(sys.modules.get(_WEBHOOK_MODULE), "BaseRequestHandler", None)
    original_register = getattr(handler_class, "register", None)

    def register(*args: Any, **kwargs: Any) -> None:
        webhook()

    _Dispatcher.start_polling = start_polling  # type: ignore[method-assign]
    _Dispatcher.run_polling = run_polling  # type: ignore[method-assign]
    if handler_class is not None:
        handler_class.register = register
    try:
        yield
    finally:
        _Dispatcher.start_polling = original_start  # type: ignore[method-assign]
        _Dispatcher.run_polling = original_run  # type: ignore[method-assign]
        if handler_class is not None:
            handler_class.register = original_register
