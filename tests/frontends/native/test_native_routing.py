"""The native Router: routes by kind, command, text and callback data; the first match wins;
a route that fails leaves no trace on the context. Runs against FakeTelegram over real HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tgrunner.client.bot import Bot
from tgrunner.frontends.native import Context, Router
from tgrunner.testing import FakeTelegram


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        yield client


def update_of(tg: FakeTelegram) -> dict:
    return tg.population.last_update


async def test_routes_in_order_first_match_wins(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    hits: list[str] = []

    @router.command("start", "help")
    async def start(ctx: Context) -> None:
        hits.append(f"cmd:{ctx.args}")

    @router.message(text="hello")
    async def hello(ctx: Context) -> None:
        hits.append("exact")

    @router.message(text=re.compile(r"^order (\d+)$"))
    async def order(ctx: Context) -> None:
        assert ctx.match is not None
        hits.append(f"order:{ctx.match[1]}")

    @router.message()
    async def other(ctx: Context) -> None:
        hits.append("other")

    router.set_username(tg.bot_user["username"])
    alice = tg.user("Alice")
    for text in ("/start now", "/help", "hello", "order 42", "bye", "/start@otherbot x"):
        alice.send(text)
        await router(update_of(tg), bot)
    me = tg.bot_user["username"]
    alice.send(f"/help@{me} me")
    await router(update_of(tg), bot)
    assert hits == ["cmd:now", "cmd:", "exact", "order:42", "other", "other", "cmd:me"]
    assert router.kinds() == ["message"]


async def test_callback_routes_and_answers(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    seen: list[str] = []

    @router.callback(data=re.compile(r"^pick:(\w+)$"))
    async def picked(ctx: Context) -> None:
        assert ctx.match is not None
        assert ctx.callback_data == "pick:tea"
        seen.append(ctx.match[1])
        await ctx.answer_callback("ok")
        await ctx.answer(f"picked {ctx.match[1]}")

    alice = tg.user("Alice")
    markup = {"inline_keyboard": [[{"text": "Tea", "callback_data": "pick:tea"}]]}
    menu = await bot.send_message(alice.chat.id, "menu", reply_markup=markup)
    alice.press(menu, data="pick:tea")
    await router(update_of(tg), bot)
    assert seen == ["tea"]
    assert tg.calls("answerCallbackQuery")[-1].params["text"] == "ok"
    assert tg.replies(alice)[-1]["text"] == "picked tea"


async def test_other_kinds_and_fallback(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    got: list[str] = []

    @router.on("inline_query")
    async def inline(ctx: Context) -> None:
        got.append(f"inline:{ctx.payload['query']}")
        assert ctx.user is not None and ctx.chat_id is None

    @router.fallback
    async def rest(ctx: Context) -> None:
        got.append(f"fallback:{ctx.kind}")

    alice = tg.user("Alice")
    alice.inline_query("cats")
    await router(update_of(tg), bot)
    alice.send("hi")
    await router(update_of(tg), bot)
    assert got == ["inline:cats", "fallback:message"]


async def test_an_update_no_route_takes_is_ignored(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.command("start")
    async def start(ctx: Context) -> None:
        await ctx.reply("hi")

    tg.user("Alice").send("not a command")
    await router(update_of(tg), bot)
    assert tg.calls("sendMessage") == []


async def test_a_failed_where_leaves_no_match_behind(tg: FakeTelegram, bot: Bot) -> None:
    """The pattern matched, the where filter refused: the next route sees its own match."""
    router = Router()
    seen: list[object] = []

    @router.message(text=re.compile(r"^order (\d+)$"), where=lambda ctx: False)
    async def never(ctx: Context) -> None:
        seen.append("never")

    @router.message(text=re.compile(r"^(\w+) (\w+)$"), where=lambda ctx: ctx.text == "nope x")
    async def refused(ctx: Context) -> None:
        seen.append("refused")

    @router.message()
    async def other(ctx: Context) -> None:
        seen.append(ctx.match)

    @router.callback(data=re.compile(r"^pick:(\w+)$"), where=lambda ctx: False)
    async def never_pressed(ctx: Context) -> None:
        seen.append("never")

    @router.callback()
    async def pressed(ctx: Context) -> None:
        seen.append(ctx.match)

    alice = tg.user("Alice")
    alice.send("order 42")
    await router(update_of(tg), bot)
    markup = {"inline_keyboard": [[{"text": "Tea", "callback_data": "pick:tea"}]]}
    menu = await bot.send_message(alice.chat.id, "menu", reply_markup=markup)
    alice.press(menu, data="pick:tea")
    await router(update_of(tg), bot)
    assert seen == [None, None]


async def test_a_where_filter_sees_the_match_of_its_own_pattern(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    seen: list[str] = []

    def big(ctx: Context) -> bool:
        return ctx.match is not None and int(ctx.match[1]) > 10

    @router.message(text=re.compile(r"^order (\d+)$"), where=big)
    async def big_order(ctx: Context) -> None:
        assert ctx.match is not None
        seen.append(f"big:{ctx.match[1]}")

    @router.message(text=re.compile(r"^order (\d+)$"))
    async def small_order(ctx: Context) -> None:
        assert ctx.match is not None
        seen.append(f"small:{ctx.match[1]}")

    alice = tg.user("Alice")
    for text in ("order 42", "order 3"):
        alice.send(text)
        await router(update_of(tg), bot)
    assert seen == ["big:42", "small:3"]


def test_the_old_import_paths_still_work() -> None:
    import tgrunner
    import tgrunner.frontends.native as native
    from tgrunner.frontends.native import router as router_module

    assert router_module.Router is native.Router is tgrunner.Router
    assert router_module.Context is native.Context is tgrunner.Context
    for name in native.__all__:
        assert hasattr(native, name), name
