"""The handler context: reply helpers set reply_parameters, ``answer_callback`` needs a callback,
and ``ctx.data`` is a fresh dict for each update. Runs against FakeTelegram over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tgrunner.client.bot import Bot
from tgrunner.frontends.native import CallNext, Context, Router
from tgrunner.testing import FakeTelegram


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        yield client


def update_of(tg: FakeTelegram) -> dict:
    return tg.population.last_update


async def test_reply_points_at_the_message(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    group = tg.group("Team", members=[tg.user("Bob")])
    carol = tg.population.user("Carol")
    carol.join(group)
    asked = carol.send("question", chat=group)
    await router(update_of(tg), bot)
    [reply] = tg.replies(group.id)
    assert reply["reply_to_message"]["message_id"] == asked["message_id"]
    assert reply["chat"]["id"] == group.id


async def test_answer_callback_outside_a_callback_is_an_error(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    errors: list[Exception] = []

    @router.message()
    async def wrong(ctx: Context) -> None:
        assert ctx.callback_data is None
        try:
            await ctx.answer_callback("x")
        except ValueError as exc:
            errors.append(exc)

    tg.user("Alice").send("hi")
    await router(update_of(tg), bot)
    assert "callback_query" in str(errors[0])


async def test_data_is_fresh_for_each_update_even_when_they_overlap(
    tg: FakeTelegram, bot: Bot
) -> None:
    router = Router()
    both_in = asyncio.Barrier(2)
    seen: list[dict[str, object]] = []

    @router.use
    async def tag(ctx: Context, call_next: CallNext) -> None:
        assert ctx.data == {}
        ctx.data["text"] = ctx.text
        await call_next()

    @router.message()
    async def handler(ctx: Context) -> None:
        ctx.data.setdefault("seen", 0)
        await both_in.wait()
        seen.append(dict(ctx.data))

    alice, bob = tg.user("Alice"), tg.user("Bob")
    alice.send("one")
    first = update_of(tg)
    bob.send("two")
    second = update_of(tg)
    await asyncio.gather(router(first, bot), router(second, bot))
    assert sorted(seen, key=str) == [{"seen": 0, "text": "one"}, {"seen": 0, "text": "two"}]
    alice.send("three")
    await asyncio.gather(router(update_of(tg), bot), both_in.wait())
    assert seen[-1] == {"seen": 0, "text": "three"}
