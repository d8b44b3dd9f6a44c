"""What ``start_polling`` gives a Dispatcher, on tgrunner: startup and shutdown hooks,
middlewares, filters (magic ones on the event loop), routers, workflow data, a returned method,
and an FSM storage in Redis that survives a restart."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import ModuleType
from typing import Any
from uuid import uuid4

import pytest
from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.filters import Filter
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.types import (
    Message,
)

from frontends.aiogram.helpers import SETTINGS, load_sample, running
from services import need_service
from tgrunner.frontends import aiogram as front
from tgrunner.frontends.aiogram import (
    TgrunnerSession,
    adapt,
    inline_magic_filters,
)
from tgrunner.testing import FakeTelegram


@pytest.fixture
def sample(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_sample(monkeypatch)


# -- lifecycle, middlewares, filters, routers, workflow data ---------------------------------------


class Long(Filter):
    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        size = len(message.text or "")
        return {"size": size} if size > 5 else False


class Tag(BaseMiddleware):
    def __init__(self, tag: str) -> None:
        self.tag = tag

    async def __call__(self, handler: Any, event: Any, data: dict[str, Any]) -> Any:
        data["tags"] = (*data.get("tags", ()), self.tag)
        return await handler(event, data)


@pytest.mark.timeout(30)
async def test_hooks_middlewares_filters_routers_and_workflow_data(tg: FakeTelegram) -> None:
    events: list[tuple[Any, ...]] = []
    threads: list[bool] = []
    dp = Dispatcher(greeting="hi")
    outer, inner, last = Router(name="outer"), Router(name="inner"), Router(name="last")
    outer.include_router(inner)
    dp.include_routers(outer, last)
    dp.update.outer_middleware(Tag("update"))
    inner.message.middleware(Tag("inner"))

    @dp.startup()
    async def on_startup(bot: Bot, dispatcher: Dispatcher, bots: tuple[Bot, ...], db: str) -> None:
        events.append(("startup", bot, dispatcher, bots, db))
        dispatcher["late"] = "set at startup"

    @inner.shutdown()
    async def on_shutdown(bot: Bot, db: str) -> None:
        events.append(("shutdown", bot, db))

    @inner.message(Long())
    async def long(message: Message, size: int, tags: tuple[str, ...], **data: Any) -> None:
        extra = f"{data['greeting']} {data['late']} {data['db']}"
        await message.answer(f"long {size} {'+'.join(tags)} {extra}")

    @inner.message(F.text == "ret")
    async def by_return(message: Message) -> Any:
        return message.answer("returned method")  # sent for the handler, as under polling

    def plain(message: Message) -> bool:
        # A plain synchronous filter keeps aiogram's worker thread; magic filters do not.
        threads.append(threading.current_thread() is threading.main_thread())
        return True

    @last.message(plain, F.text.len() == 1)
    async def short(message: Message, tags: tuple[str, ...]) -> None:
        await message.answer(f"short {'+'.join(tags)}")

    bot = Bot("42:placeholder-token-for-the-test")
    alice = tg.user("Alice")
    for text in ("a long text", "ret", "x"):
        alice.send(text)
    runner = front.runner(dp, bot, token=tg.token, api_url=tg.api_url, settings=SETTINGS, db="DB")
    task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
    replies = await tg.wait_for_replies(alice, 3)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0

    assert [r["text"] for r in replies] == [
        "long 11 update+inner hi set at startup DB",
        "returned method",
        "short update",
    ]
    assert events == [("startup", bot, dp, (bot,), "DB"), ("shutdown", bot, "DB")]
    assert threads == [False]
    assert bot.token == tg.token
    assert isinstance(bot.session, TgrunnerSession)
    assert bot.session._client is None  # closed at shutdown
    polls = {tuple(c.params.get("allowed_updates", ("-",))) for c in tg.calls("getUpdates")}
    assert ("message",) in polls


def test_magic_filters_are_made_awaitable_and_nothing_else() -> None:
    dp, router = Dispatcher(), Router()
    dp.include_router(router)
    router.message.filter(F.chat.type == "private")

    def plain(message: Message) -> bool:
        return True

    @router.message(F.text == "a", F.from_user.id > 0)
    async def a(message: Message) -> None: ...

    @router.callback_query(F.data, plain)
    async def b(query: Any) -> None: ...

    assert inline_magic_filters(dp) == 4
    assert inline_magic_filters(dp) == 0
    [plain_filter] = [f for f in router.callback_query.handlers[0].filters or () if f.magic is None]
    assert not plain_filter.awaitable

    event_log = logging.getLogger("aiogram.event")
    before = event_log.level
    try:
        event_log.setLevel(logging.NOTSET)
        adapt(dp, bot=Bot("1:a"), session="aiogram")
        assert event_log.level == logging.WARNING  # unset: aiogram's line per update is quiet
        event_log.setLevel(logging.INFO)
        adapt(dp, bot=Bot("1:a"), session="aiogram")
        assert event_log.level == logging.INFO  # set by the user: kept
    finally:
        event_log.setLevel(before)


# -- FSM storages ----------------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.timeout(30)
async def test_fsm_with_redis_storage_survives_a_restart(
    tg: FakeTelegram, sample: ModuleType
) -> None:
    need_service("redis")
    from aiogram.fsm.storage.redis import RedisStorage
    from redis.asyncio import Redis

    prefix = f"tgrunner-test-{uuid4().hex}"

    def storage() -> RedisStorage:
        return RedisStorage(Redis(host="127.0.0.1"), key_builder=DefaultKeyBuilder(prefix=prefix))

    check = Redis(host="127.0.0.1")
    alice, bob = tg.user("Alice"), tg.user("Bob")
    try:
        async with running((sample.create_dispatcher(storage()), sample.create_bot()), tg):
            for user, name in ((alice, "Alice"), (bob, "Bob")):
                user.send("/form")
                user.send(name)
            await tg.wait_for_replies(alice, 2)
            await tg.wait_for_replies(bob, 2)
            assert len([k async for k in check.scan_iter(f"{prefix}:*")]) >= 2
        # A new process would start with an empty MemoryStorage; Redis keeps the form going.
        async with running((sample.create_dispatcher(storage()), sample.create_bot()), tg):
            alice.send("30")
            bob.send("x")
            assert (await tg.wait_for_replies(alice, 3))[-1]["text"] == "Save Alice, 30?"
            assert (await tg.wait_for_replies(bob, 3))[-1]["text"] == (
                "Please send your age as a number."
            )
    finally:
        keys = [k async for k in check.scan_iter(f"{prefix}:*")]
        if keys:
            await check.delete(*keys)
        await check.aclose()
