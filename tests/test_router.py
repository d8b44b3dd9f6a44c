"""The native Router: routes by kind, command, text and callback data; the context's reply
helpers set reply_parameters. Runs against FakeTelegram over real HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tgrunner.client.bot import Bot
from tgrunner.frontends.native.router import Context, Router
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


async def test_reply_points_at_the_message(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    group = tg.group("Team", members=[tg.user("Bob")])
    bob_msg = tg.population.user("Carol")
    group_member = bob_msg
    group_member.join(group)
    asked = group_member.send("question", chat=group)
    await router(update_of(tg), bot)
    [reply] = tg.replies(group.id)
    assert reply["reply_to_message"]["message_id"] == asked["message_id"]
    assert reply["chat"]["id"] == group.id


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


async def test_answer_callback_outside_a_callback_is_an_error(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    errors: list[Exception] = []

    @router.message()
    async def wrong(ctx: Context) -> None:
        try:
            await ctx.answer_callback("x")
        except ValueError as exc:
            errors.append(exc)

    tg.user("Alice").send("hi")
    await router(update_of(tg), bot)
    assert "callback_query" in str(errors[0])


def test_include_appends_routes() -> None:
    a, b = Router(), Router()

    @b.on("poll")
    async def poll(ctx: Context) -> None: ...

    a.include(b)
    assert a.kinds() == ["poll"]
