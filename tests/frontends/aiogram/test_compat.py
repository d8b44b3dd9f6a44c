"""Each function of :mod:`tgrunner.frontends.aiogram.compat` against the installed aiogram.

These guard the aiogram internals tgrunner relies on: when aiogram changes one underneath, the
test fails and its message names the internal that moved (see the compat docstrings for what
tgrunner then does)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from types import SimpleNamespace
from typing import Any

import aiogram.loggers
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.handler import FilterObject
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.methods import GetMe, SendMessage
from aiogram.types import BufferedInputFile, Message, Update, User

from tgrunner.frontends.aiogram import compat
from tgrunner.testing import FakeTelegram

MESSAGE = {
    "message_id": 1,
    "date": 0,
    "chat": {"id": 5, "type": "private"},
    "from": {"id": 5, "is_bot": False, "first_name": "A"},
    "text": "hi",
}


def test_event_logger_is_aiogram_per_update_logger() -> None:
    assert aiogram.loggers.event.name == compat.EVENT_LOGGER, (
        f"aiogram's per-update logger (aiogram.loggers.event) is now "
        f"{aiogram.loggers.event.name!r}, not {compat.EVENT_LOGGER!r}: update compat.EVENT_LOGGER"
    )


async def test_set_bot_token_changes_token_id_and_forgets_me(tg: FakeTelegram) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url))
    async with Bot(tg.token, session=session) as bot:
        assert (await bot.me()).id == bot.id
        compat.set_bot_token(bot, "2:another-token")
        assert (bot.token, bot.id) == ("2:another-token", 2), (
            "set_bot_token: Bot.token / Bot.id did not follow Bot._Bot__token"
        )
        # The cached getMe answer (Bot._me) must be gone, or the bot would keep the old identity.
        with pytest.raises(TelegramUnauthorizedError):
            await bot.me()


def test_set_bot_token_refuses_a_bot_without_the_private_attributes() -> None:
    with pytest.raises(RuntimeError, match=r"Bot\._Bot__token"):
        compat.set_bot_token(SimpleNamespace(token="1:a"), "2:b")  # type: ignore[arg-type]


def test_bot_context_binds_parsed_objects_to_the_bot() -> None:
    bot = Bot("1:a")
    update = Update.model_validate(
        {"update_id": 1, "message": MESSAGE}, context=compat.bot_context(bot)
    )
    assert update.message is not None
    assert update.message.bot is bot, (
        "bot_context: aiogram objects no longer take their Bot from the validation context "
        "key 'bot' (BotContextController.model_post_init)"
    )
    assert update.message.chat.bot is bot


def test_aiohttp_pool_limit_reads_the_session_limit() -> None:
    assert compat.aiohttp_pool_limit(AiohttpSession(limit=7)) == 7, (
        "aiohttp_pool_limit: AiohttpSession(limit=7) is no longer in "
        "AiohttpSession._connector_init['limit']"
    )
    assert compat.aiohttp_pool_limit(AiohttpSession()) == 100
    assert compat.aiohttp_pool_limit(object(), default=3) == 3


def test_prepare_unencoded_keeps_nested_values_as_python() -> None:
    session, bot, files = AiohttpSession(), Bot("1:a"), {}
    value = {"inline_keyboard": [[{"text": "b", "callback_data": "d", "url": None}]]}
    try:
        prepared = compat.prepare_unencoded(session, value, bot, files)
    except TypeError as exc:
        pytest.fail(f"BaseSession.prepare_value no longer takes _dumps_json: {exc}")
    assert prepared == {"inline_keyboard": [[{"text": "b", "callback_data": "d"}]]}, (
        "BaseSession.prepare_value(_dumps_json=False) no longer returns Python values"
    )
    attach = compat.prepare_unencoded(session, BufferedInputFile(b"x", "a.txt"), bot, files)
    assert attach.startswith("attach://") and list(files) == [attach.removeprefix("attach://")]


def test_method_name_and_result_type() -> None:
    send = SendMessage(chat_id=1, text="x")
    assert compat.method_name(send) == "sendMessage", "TelegramMethod.__api_method__ moved"
    assert compat.method_name(GetMe()) == "getMe"
    assert compat.method_returns(send) is Message, "TelegramMethod.__returning__ moved"
    assert compat.method_returns(GetMe()) is User


def test_filter_objects_finds_observer_and_handler_filters() -> None:
    dp, router = Dispatcher(), Router()
    dp.include_router(router)
    router.message.filter(F.chat.type == "private")

    @router.message(F.text == "a")
    async def a(message: Message) -> None: ...

    found = list(compat.filter_objects(dp))
    magics = [repr(f.magic) for f in found if f.magic is not None]
    assert len(found) == 2, (
        "filter_objects: the observer-wide filter (TelegramEventObserver._handler.filters) or "
        f"the handler's own (HandlerObject.filters) was not found: {found}"
    )
    assert len(magics) == 2


def test_is_sync_magic_filter() -> None:
    def plain(message: Message) -> bool:
        return True

    async def coroutine(message: Message) -> bool:
        return True

    assert compat.is_sync_magic_filter(FilterObject(F.text)), (
        "FilterObject(F.text) no longer has .magic set and .awaitable False"
    )
    assert not compat.is_sync_magic_filter(FilterObject(plain))
    assert not compat.is_sync_magic_filter(FilterObject(coroutine))


async def test_run_filter_on_loop_moves_the_filter_off_the_thread() -> None:
    message = Message.model_validate(MESSAGE)
    on_main = F.func(lambda _: threading.current_thread() is threading.main_thread())
    extra: dict[str, Any] = {"bot": None, "state": None, "event_from_user": None}

    before = FilterObject(on_main)
    assert await before.call(message, **extra) is False, (
        "CallableObject.call no longer runs a synchronous filter through asyncio.to_thread; "
        "run_filter_on_loop may be unneeded"
    )
    after = FilterObject(on_main)
    compat.run_filter_on_loop(after)
    assert await after.call(message, **extra) is True, (
        "run_filter_on_loop: CallableObject.call does not await callback() when awaitable is "
        "True, or passes keyword arguments the magic filter does not take (params/varkw)"
    )
    text = FilterObject(F.text == "hi")
    compat.run_filter_on_loop(text)
    assert await text.call(message, **extra) is True
    assert not compat.is_sync_magic_filter(text)


async def test_memory_storage_records_hold_the_fsm_state() -> None:
    storage = MemoryStorage()
    key = StorageKey(bot_id=1, chat_id=5, user_id=5)
    await storage.set_state(key, "Form:name")
    await storage.set_data(key, {"name": "Alice"})
    records = compat.memory_storage_records(storage)
    assert key in records, "MemoryStorage.storage no longer holds the records by StorageKey"
    records.clear()  # what a reset does
    assert await storage.get_state(key) is None, "emptying MemoryStorage.storage kept the state"
    assert await storage.get_data(key) == {}


def test_memory_storage_records_fail_clearly_when_moved() -> None:
    with pytest.raises(RuntimeError, match=r"MemoryStorage\.storage"):
        compat.memory_storage_records(SimpleNamespace())


async def test_polling_calls_take_start_and_run_polling_and_put_them_back() -> None:
    for method in (Dispatcher.start_polling, Dispatcher.run_polling):
        params = inspect.signature(method).parameters
        assert {"bots", "polling_timeout", "allowed_updates", "kwargs"} <= set(params), (
            f"aiogram's Dispatcher.{method.__name__} lost a parameter tgrunner maps: {params}"
        )
    original = (Dispatcher.start_polling, Dispatcher.run_polling)
    seen: list[tuple[str, Any, tuple[Any, ...], dict[str, Any]]] = []

    async def start(dp: Any, bots: tuple[Any, ...], options: dict[str, Any]) -> None:
        seen.append(("start", dp, bots, options))

    def run(dp: Any, bots: tuple[Any, ...], options: dict[str, Any]) -> None:
        seen.append(("run", dp, bots, options))

    dp, bot = Dispatcher(), Bot("1:a")
    with compat.polling_calls(start, run, lambda: None):
        await dp.start_polling(bot, polling_timeout=3, greeting="hi")
        await asyncio.to_thread(dp.run_polling, bot)
    # Only what the caller passed, and the workflow data as plain keywords.
    assert seen == [
        ("start", dp, (bot,), {"polling_timeout": 3, "greeting": "hi"}),
        ("run", dp, (bot,), {}),
    ]
    assert (Dispatcher.start_polling, Dispatcher.run_polling) == original


def test_polling_calls_refuse_the_webhook_handler_only_while_active() -> None:
    from aiogram.webhook.aiohttp_server import BaseRequestHandler, SimpleRequestHandler
    from aiohttp import web

    original = BaseRequestHandler.register
    calls: list[str] = []

    async def never(*args: Any) -> None:
        raise AssertionError("not a polling call")

    handler = SimpleRequestHandler(dispatcher=Dispatcher(), bot=Bot("1:a"))
    with compat.polling_calls(never, never, lambda: calls.append("webhook")):  # type: ignore[arg-type]
        handler.register(web.Application(), path="/hook")
    assert calls == ["webhook"]
    assert BaseRequestHandler.register is original
