"""The aiogram 3 front-end against FakeTelegram over real HTTP: the sample bot behaves as under
aiogram's own polling, order holds under concurrency, FSM state never races, hooks, middlewares,
filters, routers and storages work, the tgrunner session raises aiogram's own errors, and a
``tgrunner run`` process stops cleanly and survives SIGKILL."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import uuid4

import pytest
from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TEST, TelegramAPIServer
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Filter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.memory import DisabledEventIsolation, MemoryStorage
from aiogram.fsm.strategy import FSMStrategy
from aiogram.types import (
    BufferedInputFile,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    Update,
)

from conftest import need_service
from replies import replied, send_load, tally
from tgrunner.client.bot import Bot as NativeBot
from tgrunner.errors import ConfigError
from tgrunner.frontends import aiogram as front
from tgrunner.frontends.aiogram import (
    TgrunnerSession,
    adapt,
    event_context,
    fsm_keys,
    inline_magic_filters,
)
from tgrunner.keys import default_keys
from tgrunner.runtime.build import build_runner
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram, Faults, FloodLimits

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples"
SETTINGS = Settings(polling=PollingOptions(timeout=1, backoff_base=0.01, backoff_cap=0.05), grace=5)
# Telegram returns at most 100 updates past the confirmed offset, so no more can be in flight.
IN_FLIGHT_BOUND = 100


@pytest.fixture
def sample(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import aiogram_bot

    monkeypatch.setattr(aiogram_bot, "SLOW_SECONDS", 0.05)
    return aiogram_bot


@asynccontextmanager
async def running(target: Any, tg: FakeTelegram, **options: Any) -> AsyncIterator[Runner]:
    """Serve ``target`` through build_runner, as ``tgrunner run`` does; stop cleanly at the end."""
    settings = options.pop("settings", SETTINGS)
    runner = build_runner(target, token=tg.token, api_url=tg.api_url, settings=settings, **options)
    task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
    try:
        yield runner
    except BaseException:
        runner.stop(fast=True)
        await asyncio.wait_for(task, 10)
        raise
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


# -- the sample bot: tgrunner answers as aiogram's own sequential polling does ---------------------

_CHAT_METHODS = ("sendMessage", "editMessageText")


def transcript(tg: FakeTelegram, chat_id: int) -> list[str]:
    """What the bot wrote into a chat, in order: new messages and edits."""
    return [
        f"{r.method}: {r.params['text']}"
        for r in tg.requests
        if r.ok and r.method in _CHAT_METHODS and int(r.params.get("chat_id", 0)) == chat_id
    ]


def with_button(tg: FakeTelegram, chat_id: int, data: str, prefix: str = "") -> dict[str, Any]:
    """The latest bot message in the chat with a ``data`` button, whose text starts so."""
    for message in reversed(tg.replies(chat_id)):
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        if message.get("text", "").startswith(prefix) and any(
            b.get("callback_data") == data for row in rows for b in row
        ):
            return message
    raise AssertionError(f"no message with button {data!r} in chat {chat_id}")


# (who, "send" | "press", text or callback data, replies expected, text of the pressed message)
ALICE = [
    ("send", "/start", 1),
    ("press", "count:1", 1),
    ("press", "count:1", 1),
    ("press", "count:-1", 1),
    ("press", "show", 1),
    ("send", "/form", 1),
    ("send", "Alice", 1),
    ("send", "thirty", 1),
    ("send", "30", 1),
    ("press", "form:yes", 1),
    ("send", "/start", 1),
    ("send", "/fail", 1),
    ("send", "/boom", 0),
    ("send", "/slow", 2),
    ("send", "bye", 1),
]
BOB = [
    ("send", "/help", 1),
    ("send", "/form", 1),
    ("send", "/cancel", 1),
    ("send", "/cancel", 1),
    ("send", "hello <b>", 1),
    ("send", "/form", 1),
    ("send", "Bob", 1),
    ("send", "7", 1),
    ("press", "form:no", 1),
]
CAROL = [
    ("send", "/start", 1),
    ("press", "count:1", 1),
    ("press", "count:1", 1),
    ("press", "count:1", 1),
    ("press", "show", 1),
    ("send", "/slow", 2),
]
# Two users fill in the form in one group at once: USER_IN_CHAT keeps their states apart.
TEAM = [
    ("dave", "send", "/form", 1),
    ("erin", "send", "/form", 1),
    ("dave", "send", "Dave", 1),
    ("erin", "send", "Erin", 1),
    ("erin", "send", "25", 1),
    ("dave", "send", "40", 1),
    ("dave", "press", "form:yes", 1, "Save Dave"),
    ("erin", "press", "form:no", 1, "Save Erin"),
    ("dave", "send", "/start", 1),
    ("erin", "press", "count:1", 1),
    ("erin", "send", "/boom", 0),
    ("dave", "send", "/slow", 2),
]


async def play(tg: FakeTelegram, chat: Any, users: dict[str, Any], steps: list[tuple]) -> None:
    private = chat.type == "private"
    for step in steps:
        who, kind, arg, expect, *prefix = step if not private else ("me", *step)
        user = users[who]
        wanted = len(transcript(tg, chat.id)) + expect
        if kind == "send":
            user.send(arg, chat=None if private else chat)
        else:
            user.press(with_button(tg, chat.id, arg, *prefix), data=arg)
        if expect:
            await tg.wait_for(
                lambda n=wanted: len(transcript(tg, chat.id)) >= n,
                timeout=10,
            )


async def play_script(tg: FakeTelegram) -> dict[str, list[str]]:
    alice, bob = tg.user("Alice"), tg.user("Bob")
    carol = tg.user("Carol", language_code="de")
    dave, erin = tg.user("Dave"), tg.user("Erin")
    team = tg.group("Team", members=[dave, erin])
    await asyncio.gather(
        play(tg, alice.chat, {"me": alice}, ALICE),
        play(tg, bob.chat, {"me": bob}, BOB),
        play(tg, carol.chat, {"me": carol}, CAROL),
        play(tg, team, {"dave": dave, "erin": erin}, TEAM),
    )
    chats = {"alice": alice.chat, "bob": bob.chat, "carol": carol.chat, "team": team}
    return {name: transcript(tg, chat.id) for name, chat in chats.items()}


@pytest.mark.timeout(60)
async def test_sample_bot_answers_as_under_aiogram_sequential_polling(sample: ModuleType) -> None:
    async with FakeTelegram(seed=7) as tg:
        dp, bot = sample.create_dispatcher(), sample.create_bot(tg.token, tg.api_url)
        polling = asyncio.get_running_loop().create_task(
            dp.start_polling(bot, handle_as_tasks=False, handle_signals=False, polling_timeout=1)
        )
        expected = await play_script(tg)
        await dp.stop_polling()
        await polling

    async with FakeTelegram(seed=7) as tg:
        dp, bot = sample.create_dispatcher(), sample.create_bot()
        async with running((dp, bot), tg):
            got = await play_script(tg)

    assert got == expected
    assert expected["alice"][:6] == [
        "sendMessage: Hello, <b>Alice</b>! Count: 0",
        "editMessageText: Count: 1",
        "editMessageText: Count: 2",
        "editMessageText: Count: 1",
        "sendMessage: The count is 1.",
        "sendMessage: What is your name?",
    ]
    assert "sendMessage: Saved: Dave, 40." in expected["team"]
    assert expected["carol"][0] == "sendMessage: Hallo, <b>Carol</b>! Count: 0"


async def test_unhandled_errors_reach_the_error_hook_after_aiogram_error_handlers(
    tg: FakeTelegram, sample: ModuleType
) -> None:
    fe = adapt(
        (sample.create_dispatcher(), sample.create_bot()), token=tg.token, api_url=tg.api_url
    )
    errors: list[tuple[str, BaseException]] = []
    runner = Runner(
        fe.handler,
        token=fe.token,
        api_url=tg.api_url,
        settings=replace(SETTINGS, keys=fe.keys or default_keys),
        on_error=lambda update, exc: errors.append((update["message"]["text"], exc)),
        startup=fe.startup,
        shutdown=fe.shutdown,
    )
    task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
    alice = tg.user("Alice")
    for text in ("/fail", "/boom", "after"):
        alice.send(text)
    replies = await tg.wait_for_replies(alice, 2)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    # /fail is answered by the sample's aiogram error handler; only /boom is left unhandled.
    assert [r["text"] for r in replies] == [
        "Sorry, that failed: the input was bad",
        "You said: after",
    ]
    assert [(text, type(exc)) for text, exc in errors] == [("/boom", RuntimeError)]
    assert runner.stats.errors == 1


# -- order and FSM under concurrency ---------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_order_holds_for_many_users_with_interleaved_updates(tg: FakeTelegram) -> None:
    import aiogram_echo

    users = [tg.user(f"U{i}") for i in range(40)]
    sent: dict[int, list[str]] = {}
    n = 0
    for _round in range(10):
        for user in users:
            n += 1
            user.send(str(n))
            sent.setdefault(user.chat.id, []).append(str(n))
    async with running(aiogram_echo.create(), tg):
        await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= n, timeout=30)
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0


@pytest.mark.timeout(30)
async def test_fsm_state_never_races_under_global_user_strategy(tg: FakeTelegram) -> None:
    # The state follows the user across chats, so Alice's private chat and the group must not
    # run her updates at once: every read-modify-write of her counter sees the one before it.
    dp = Dispatcher(fsm_strategy=FSMStrategy.GLOBAL_USER)

    @dp.message(F.text)
    async def count(message: Message, state: FSMContext) -> None:
        seen = (await state.get_data()).get("n", 0)
        await asyncio.sleep(random.uniform(0.0, 0.005))
        await state.update_data(n=seen + 1)
        await message.answer(
            f"{message.from_user.first_name if message.from_user else ''} {seen + 1}"
        )

    alice, bob = tg.user("Alice"), tg.user("Bob")
    group = tg.group("G", members=[alice, bob])
    for i in range(15):
        alice.send(f"p{i}")
        alice.send(f"g{i}", chat=group)
        bob.send(f"b{i}", chat=group)
    async with running((dp, Bot(tg.token)), tg):
        await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= 45, timeout=20)
    counts: dict[str, list[int]] = {"Alice": [], "Bob": []}
    for r in tg.calls("sendMessage"):
        name, n = r.params["text"].split()
        counts[name].append(int(n))
    assert sorted(counts["Alice"]) == list(range(1, 31))
    assert sorted(counts["Bob"]) == list(range(1, 16))


# -- keys ------------------------------------------------------------------------------------------


async def varied_updates(tg: FakeTelegram) -> list[dict[str, Any]]:
    """Updates of most kinds, in private chats, a group, forum topics, a channel, business."""
    alice, bob, carol = tg.user("Alice"), tg.user("Bob"), tg.user("Carol")
    group = tg.group("G", members=[alice, bob])
    forum = tg.forum("F", members=[alice, bob])
    topic = forum.create_topic("T", by=alice)
    channel = tg.channel("C", owner=carol)
    keyboard = {"inline_keyboard": [[{"text": "b", "callback_data": "d"}]]}
    async with NativeBot(tg.token, api_url=tg.api_url) as bot:
        for chat, thread in ((alice.chat, None), (group, None), (forum, topic.id), (forum, None)):
            params = {"reply_markup": keyboard, "message_thread_id": thread}
            message = await bot.send_message(chat.id, "keys", **params)
            for user in (alice, bob) if chat.type != "private" else (alice,):
                user.press(message, data="d")
    for user in (alice, bob):
        own = user.send("hi")
        user.edit(own, "hi!")
        in_group = user.send("g", chat=group)
        user.react(in_group, "👍")
        user.send("t", chat=forum, thread=topic)
        user.send("general", chat=forum)
        user.inline_query("q")
        user.choose_inline_result("r1", "q")
        user.press_inline("inline-1", "d")
        user.shipping_query("p")
        user.pre_checkout("p")
        user.boost(forum)
    poll = alice.send_poll("?", ["a", "b"], anonymous=False, chat=group)
    bob.answer_poll(poll, [0])
    channel.post("news")
    carol.join(group)
    carol.request_join(forum)
    alice.connect_business()
    alice.business_send("hello", to=bob)
    bob.business_send("hi", to=alice)
    # A button pressed under a message the bot can no longer see (an inaccessible message).
    inaccessible = {"chat": group.as_dict(), "message_id": 1, "date": 0}
    tg.population.push(
        "callback_query",
        {"id": "q1", "from": bob.as_dict(), "message": inaccessible, "chat_instance": "1"},
    )
    return list(tg.population.updates)


def aiogram_view(update: dict[str, Any], bot: Bot, strategy: FSMStrategy) -> tuple[Any, Any]:
    """aiogram's own (chat, user, thread) and FSM storage key for an update."""
    context = UserContextMiddleware.resolve_event_context(
        Update.model_validate(update, context={"bot": bot})
    )
    fsm = FSMContextMiddleware(MemoryStorage(), DisabledEventIsolation(), strategy)
    found = fsm.resolve_context(
        bot,
        chat_id=context.chat_id,
        user_id=context.user_id,
        thread_id=context.thread_id,
        business_connection_id=context.business_connection_id,
    )
    return (context.chat_id, context.user_id, context.thread_id), found and found.key


@pytest.mark.parametrize("strategy", list(FSMStrategy))
async def test_updates_sharing_an_fsm_key_share_a_tgrunner_key(
    tg: FakeTelegram, strategy: FSMStrategy
) -> None:
    updates = await varied_updates(tg)
    keys = fsm_keys(strategy)
    by_storage_key: dict[StorageKey, list[tuple[str, ...]]] = {}
    bot = Bot(tg.token)
    for update in updates:
        context, storage_key = aiogram_view(update, bot, strategy)
        assert event_context(update) == context, update
        found = keys(update)
        assert found and all(isinstance(k, str) for k in found), update
        if storage_key is not None:
            by_storage_key.setdefault(storage_key, []).append(found)
    assert len(by_storage_key) >= 5
    for storage_key, key_sets in by_storage_key.items():
        for a in key_sets:
            for b in key_sets:
                assert set(a) & set(b), (storage_key, a, b)


async def test_keys_keep_the_default_chat_key_names(tg: FakeTelegram) -> None:
    updates = await varied_updates(tg)
    for update in updates:
        chat, _, thread = event_context(update)
        default = default_keys(update)
        for strategy in FSMStrategy:
            found = fsm_keys(strategy)(update)
            if chat is not None and thread is None:
                assert found[0] == f"c:{chat}" == default[0], (strategy, update)
    forum_topic = next(u for u in updates if event_context(u)[2] is not None and "message" in u)
    chat, _, thread = event_context(forum_topic)
    assert fsm_keys(FSMStrategy.USER_IN_TOPIC)(forum_topic) == (f"c:{chat}:{thread}",)
    assert fsm_keys(FSMStrategy.USER_IN_CHAT)(forum_topic) == (f"c:{chat}",)
    inline = next(u for u in updates if "inline_query" in u)
    user_id = inline["inline_query"]["from"]["id"]
    assert fsm_keys(FSMStrategy.USER_IN_CHAT)(inline) == (f"c:{user_id}",)
    assert fsm_keys(FSMStrategy.GLOBAL_USER)(inline) == (f"u:{user_id}",)
    assert fsm_keys(FSMStrategy.CHAT)({"update_id": 1, "message": {"bad": 1}}) == ()


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


# -- finding the Bot, token, server and session ----------------------------------------------------


def test_the_bot_is_found_beside_the_dispatcher_in_its_module() -> None:
    import aiogram_echo

    fe = adapt(aiogram_echo.dp, session="aiogram")
    assert fe.token == aiogram_echo.TOKEN
    assert fe.api_url == "https://api.telegram.org"
    assert fe.allowed_updates == ("message",)
    assert fe.keys is fsm_keys(FSMStrategy.USER_IN_CHAT)


def test_the_bot_is_found_in_workflow_data_or_given() -> None:
    bot = Bot("1:first-token")
    assert adapt(Dispatcher(bot=bot), session="aiogram").token == "1:first-token"
    other = Bot("2:second-token")
    assert adapt((Dispatcher(), [other]), session="aiogram").token == "2:second-token"
    assert adapt((other, Dispatcher()), session="aiogram").token == "2:second-token"
    assert adapt(Dispatcher(), bot=other, session="aiogram").token == "2:second-token"
    assert adapt(Dispatcher(disable_fsm=True), bot=other, session="aiogram").keys is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (lambda: Dispatcher(), "Found no aiogram Bot"),
        (lambda: (Dispatcher(), [Bot("1:a"), Bot("2:b")]), "Found 2 aiogram Bots given"),
        (lambda: Dispatcher(a=Bot("1:a"), b=Bot("2:b")), "Found 2 aiogram Bots in the"),
        (lambda: (Dispatcher(), "bot"), "must be (dispatcher, bot)"),
        (lambda: Bot("1:a"), "not a Bot"),
    ],
)
def test_unusable_targets_fail_clearly(target: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        adapt(target())


def test_token_server_and_session_resolution() -> None:
    own = TelegramAPIServer.from_base("http://127.0.0.1:8081")
    bot = Bot("1:own-token", session=AiohttpSession(api=own, timeout=7))
    middleware = bot.session.middleware
    fe = adapt(Dispatcher(), bot=bot)
    assert fe.api_url == "http://127.0.0.1:8081"  # the Bot's configured server
    assert isinstance(bot.session, TgrunnerSession)
    assert bot.session.timeout == 7
    assert bot.session.middleware is middleware  # request middlewares are kept

    fe = adapt(Dispatcher(), bot=bot, token="2:given-token", api_url="http://127.0.0.1:9000/")
    assert (fe.token, bot.token, bot.id) == ("2:given-token", "2:given-token", 2)
    assert fe.api_url == "http://127.0.0.1:9000"
    assert bot.session.api.api_url(bot.token, "getMe") == (
        "http://127.0.0.1:9000/bot2:given-token/getMe"
    )

    class Custom(AiohttpSession):
        pass

    kept = Bot("1:own-token", session=Custom())
    adapt(Dispatcher(), bot=kept)
    assert type(kept.session) is Custom

    with pytest.raises(ConfigError, match="pass api_url"):
        adapt(Dispatcher(), bot=Bot("1:a", session=AiohttpSession(api=TEST)))
    with pytest.raises(ConfigError, match="session must be one of"):
        adapt(Dispatcher(), bot=Bot("1:a"), session="httpx")
    with pytest.raises(ConfigError, match="not valid for aiogram"):
        adapt(Dispatcher(), bot=Bot("1:a"), token="no token")


async def test_a_factory_import_string_and_both_session_modes(tg: FakeTelegram) -> None:
    import aiogram_echo

    alice = tg.user("Alice")
    async with running("aiogram_echo:create", tg):
        alice.send("factory")
        await tg.wait_for_replies(alice, 1)
    dp, bot = aiogram_echo.create()
    async with running((dp, bot), tg, session="aiogram"):
        alice.send("aiogram")
        await tg.wait_for_replies(alice, 2)
        assert type(bot.session) is AiohttpSession
    assert bot.session._session is not None and bot.session._session.closed
    dp, bot = aiogram_echo.create()
    async with running((dp, bot), tg, session="tgrunner"):
        alice.send("tgrunner")
        await tg.wait_for_replies(alice, 3)
        assert type(bot.session) is TgrunnerSession
    assert [r["text"] for r in tg.replies(alice)] == ["factory", "aiogram", "tgrunner"]


# -- the tgrunner session --------------------------------------------------------------------------


def make_session(kind: str, api_url: str) -> BaseSession:
    api = TelegramAPIServer.from_base(api_url)
    return TgrunnerSession(api) if kind == "tgrunner" else AiohttpSession(api=api)


@pytest.mark.parametrize("kind", ["tgrunner", "aiogram"])
async def test_session_raises_aiogram_exceptions(tg: FakeTelegram, kind: str) -> None:
    alice = tg.user("Alice")
    async with Bot(tg.token, session=make_session(kind, tg.api_url)) as bot:
        with pytest.raises(TelegramBadRequest, match="chat not found"):
            await bot.send_message(chat_id=424242, text="x")
        tg.flood = FloodLimits(per_chat_per_second=0.01, private_burst=1)
        await bot.send_message(alice.id, "one")
        with pytest.raises(TelegramRetryAfter) as retry:
            await bot.send_message(alice.id, "two")
        assert retry.value.retry_after >= 1
        tg.flood = None
        tg.faults = Faults(error_rate=1.0, methods=frozenset({"getChat"}))
        with pytest.raises(TelegramServerError):
            await bot.get_chat(alice.id)
        tg.faults = Faults(latency=1.0, methods=frozenset({"getChat"}))
        with pytest.raises(TelegramNetworkError, match="timeout"):
            await bot.get_chat(alice.id, request_timeout=0.1)  # type: ignore[arg-type]
        tg.faults = None
    async with Bot("1:wrong", session=make_session(kind, tg.api_url)) as stranger:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    async with Bot(tg.token, session=make_session(kind, "http://127.0.0.1:9")) as lost:
        with pytest.raises(TelegramNetworkError):
            await lost.get_me()


async def calls_through(
    kind: str, tg: FakeTelegram, chat_id: int, members: list[int]
) -> list[tuple[str, int, Any]]:
    default = DefaultBotProperties(parse_mode="HTML")
    start = len(tg.requests)
    async with Bot(tg.token, session=make_session(kind, tg.api_url), default=default) as bot:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="d")]]
        )
        await bot.send_message(chat_id, "<b>hi</b>", reply_markup=keyboard)
        await bot.send_message(chat_id, "plain", parse_mode=None, disable_notification=False)
        doc = await bot.send_document(
            chat_id, BufferedInputFile(b"payload", "a.txt"), caption="<i>c</i>"
        )
        await bot.send_media_group(
            chat_id,
            [
                InputMediaPhoto(media=BufferedInputFile(b"p1", "1.jpg")),
                InputMediaPhoto(media=BufferedInputFile(b"p2", "2.jpg"), caption="two"),
            ],
        )
        await bot.restrict_chat_member(
            chat_id,
            user_id=members[0],
            permissions=ChatPermissions(can_send_messages=False),
            until_date=datetime(2030, 1, 1),
        )
        await bot.ban_chat_member(chat_id, user_id=members[1], until_date=timedelta(days=400))
        assert doc.document is not None
        downloaded = await bot.download(doc.document.file_id)
        assert downloaded is not None and downloaded.read() == b"payload"
    # getFile names a file id that differs from run to run; the download checked its content.
    calls = [
        (r.method, r.status, normalised(r.params))
        for r in list(tg.requests)[start:]
        if r.method != "getFile"
    ]
    for method, _, params in calls:
        if method == "banChatMember":  # a timedelta is sent as a time from now
            until = int(params.pop("until_date"))
            assert abs(until - (datetime.now() + timedelta(days=400)).timestamp()) < 60
    return calls


def normalised(value: Any) -> Any:
    """Parameters as recorded, but for the random names in ``attach://<name>``."""
    if isinstance(value, str) and value.startswith("attach://"):
        return "attach://…"
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items()}
    return value


async def test_session_sends_what_aiogram_own_session_sends(tg: FakeTelegram) -> None:
    alice, bob = tg.user("Alice"), tg.user("Bob")
    group = tg.supergroup("S", members=[alice, bob])
    via_tgrunner = await calls_through("tgrunner", tg, group.id, [alice.id, bob.id])
    via_aiogram = await calls_through("aiogram", tg, group.id, [alice.id, bob.id])
    assert via_tgrunner == via_aiogram
    assert [m for m, status, _ in via_tgrunner if status != 200] == []
    first = via_tgrunner[0][2]
    assert first["parse_mode"] == "HTML"
    assert first["reply_markup"] == {"inline_keyboard": [[{"text": "b", "callback_data": "d"}]]}


async def test_session_keeps_request_middlewares_and_reopens(tg: FakeTelegram) -> None:
    seen: list[str] = []

    async def spy(make_request: Any, bot: Bot, method: Any) -> Any:
        seen.append(type(method).__name__)
        return await make_request(bot, method)

    bot = Bot("1:a", session=AiohttpSession())
    bot.session.middleware(spy)
    fe = adapt(Dispatcher(), bot=bot, token=tg.token, api_url=tg.api_url)
    assert fe.startup is not None and fe.shutdown is not None
    await fe.startup()
    await bot.get_me()
    await fe.shutdown()
    me = await bot.get_me()  # a closed session opens a new pool, as AiohttpSession does
    await bot.session.close()
    await bot.session.close()
    assert me.id == bot.id
    assert isinstance(bot.session, TgrunnerSession)
    assert seen == ["GetMe", "GetMe", "GetMe"]  # bot.me() at startup, then the two calls


# -- a `tgrunner run` process: SIGTERM and SIGKILL -------------------------------------------------


async def start_bot(
    tg: FakeTelegram, target: str, log: Path
) -> tuple[asyncio.subprocess.Process, Any]:
    polls = len(tg.calls("getUpdates"))
    # The log goes to a file: aiogram logs a line per update, more than a pipe holds.
    err = log.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", target,
        "--api-url", tg.api_url, "--token", tg.token,
        cwd=HERE,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=err,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    await tg.wait_for(lambda: len(tg.calls("getUpdates")) > polls, timeout=30)
    return proc, err


async def finish(proc: asyncio.subprocess.Process, err: Any, timeout: float = 30) -> int:
    code = await asyncio.wait_for(proc.wait(), timeout)
    err.close()
    return code


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigterm_under_load_then_restart_loses_and_repeats_nothing(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    log = tmp_path / "bot.log"
    sent = send_load(tg, chats=40, per_chat=20)
    total = sum(len(v) for v in sent.values())
    bot, err = await start_bot(tg, "aiogram_echo:dp", log)
    await tg.wait_for(lambda: replied(tg) >= total // 4, timeout=30)
    bot.send_signal(signal.SIGTERM)
    assert await finish(bot, err) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    assert replied(tg) < total, "the stop came too late to test anything"

    bot, err = await start_bot(tg, "aiogram_echo:dp", log)
    await tg.wait_for(lambda: replied(tg) >= total, timeout=60)
    bot.send_signal(signal.SIGTERM)
    assert await finish(bot, err) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigkill_then_restart_loses_nothing(tg: FakeTelegram, tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    sent = send_load(tg, chats=40, per_chat=20)
    total = sum(len(v) for v in sent.values())
    bot, err = await start_bot(tg, "aiogram_echo:dp", log)
    await tg.wait_for(lambda: replied(tg) >= total // 4, timeout=30)
    bot.kill()
    await finish(bot, err)
    assert replied(tg) < total

    bot, err = await start_bot(tg, "aiogram_echo:create", log)  # the factory form this time
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=60)
    bot.send_signal(signal.SIGTERM)
    assert await finish(bot, err) == 0, log.read_text()
    result = tally(sent, tg.requests)
    assert result.lost == 0
    assert result.duplicates <= IN_FLIGHT_BOUND
    assert result.violations == 0
