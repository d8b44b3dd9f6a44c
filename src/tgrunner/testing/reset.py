"""Empty the in-memory state a framework keeps between two runs of the same bot object.

A module-level aiogram ``Dispatcher`` or PTB ``Application`` lives as long as the test process:
what one test leaves in its FSM storage or ``user_data`` would greet the next. Before a bot is
started, :func:`tgrunner.testing.running` calls :func:`reset_state` on it (unless
``reset_state=False``). What is reset:

- **aiogram**: the FSM states and data of a ``MemoryStorage`` (the default storage). Other
  storages (Redis, tgrunner's state bridge) are the user's to empty: they outlive the process
  by design.
- **python-telegram-bot**, for an Application without a persistence: ``user_data``,
  ``chat_data``, ``bot_data`` (a new object of the ``ContextTypes`` class), the state of every
  ``ConversationHandler`` (nested ones too) and the arbitrary-callback-data cache. Jobs need
  nothing: PTB's ``JobQueue`` forgets them when the application stops. With a persistence
  nothing is reset: its data is loaded again at start-up (and dropping it would delete it
  there too), so give each test its own.
- **native** bots keep no framework state; a module's own globals are the module's.

Independently of that, :func:`prepare_for_loop` readies an object that may have run on another
event loop before (pytest-asyncio gives each test its own): a PTB Application gets a new,
empty ``update_queue`` and a new persistence event, since asyncio queues and events stay bound
to the loop that first waited on them.

The framework is imported only when the object is one of its own. The private parts used are
in :mod:`tgrunner.frontends.aiogram.compat` and :mod:`tgrunner.frontends.ptb.compat`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["prepare_for_loop", "reset_state"]

log = logging.getLogger(__name__)


def _package(obj: Any) -> str:
    return (type(obj).__module__ or "").partition(".")[0]


def reset_state(obj: Any) -> list[str]:
    """Empty the in-memory framework state of ``obj`` (a Dispatcher, ``(dispatcher, bot)``, an
    Application, anything else: nothing to do); return what was reset, for the log."""
    done: list[str] = []
    for item in _items(obj):
        package = _package(item)
        if package == "aiogram":
            done += _reset_aiogram(item)
        elif package == "telegram":
            done += _reset_ptb(item)
    if done:
        log.debug("reset before the run: %s", ", ".join(done))
    return done


def _items(obj: Any) -> list[Any]:
    return list(obj) if isinstance(obj, tuple | list) else [obj]


def prepare_for_loop(obj: Any) -> None:
    """Ready ``obj`` to start on the running event loop, whichever loop it ran on before."""
    for item in _items(obj):
        if _package(item) == "telegram":
            _fresh_loop_objects(item)


def _fresh_loop_objects(obj: Any) -> None:
    from telegram.ext import Application

    from tgrunner.frontends.ptb import compat

    if not isinstance(obj, Application) or obj.running:
        return
    if obj.persistence is not None:
        compat.fresh_persistence_event(obj)
    if not obj.update_queue.empty():
        return
    old = obj.update_queue
    new: asyncio.Queue[object] = asyncio.Queue(maxsize=old.maxsize)
    obj.update_queue = new
    if obj.updater is not None and obj.updater.update_queue is old:
        obj.updater.update_queue = new


def _reset_aiogram(obj: Any) -> list[str]:
    from aiogram import Dispatcher
    from aiogram.fsm.storage.memory import MemoryStorage

    from tgrunner.frontends.aiogram import compat

    if not isinstance(obj, Dispatcher) or not isinstance(obj.storage, MemoryStorage):
        return []
    records = compat.memory_storage_records(obj.storage)
    count = len(records)
    records.clear()
    return [f"aiogram MemoryStorage ({count} keys)"]


def _conversations(handlers: Any) -> Iterator[Any]:
    """Every ConversationHandler among ``handlers``, and those nested in their states."""
    from telegram.ext import ConversationHandler

    for handler in handlers:
        if isinstance(handler, ConversationHandler):
            yield handler
            nested = [*handler.entry_points, *handler.fallbacks]
            for state_handlers in handler.states.values():
                nested += state_handlers
            yield from _conversations(nested)


def _reset_ptb(obj: Any) -> list[str]:
    from telegram.ext import Application, ExtBot

    from tgrunner.frontends.ptb import compat

    if not isinstance(obj, Application):
        return []
    app = obj
    if app.persistence is not None:
        log.debug("the application has a persistence: its data is left as it is")
        return []
    done = [f"PTB user_data ({len(app.user_data)}), chat_data ({len(app.chat_data)}), bot_data"]
    for user_id in list(app.user_data):
        app.drop_user_data(user_id)
    for chat_id in list(app.chat_data):
        app.drop_chat_data(chat_id)
    app.bot_data = app.context_types.bot_data()
    handlers = [h for group in app.handlers.values() for h in group]
    ended = 0
    for conversation in _conversations(handlers):
        states = compat.conversation_states(conversation)
        ended += len(states)
        states.clear()
    done.append(f"PTB conversations ({ended})")
    bot = app.bot
    if isinstance(bot, ExtBot) and bot.callback_data_cache is not None:
        bot.callback_data_cache.clear_callback_data()
        bot.callback_data_cache.clear_callback_queries()
        done.append("PTB callback data cache")
    return done
