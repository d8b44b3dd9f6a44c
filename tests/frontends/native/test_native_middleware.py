"""Middlewares: ``router.use(fn)``, ``async def fn(ctx, call_next)``. They wrap the handler of the
route that matched, outer routers' outside included routers', and may stop, follow up or catch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tgrunner.client.bot import Bot
from tgrunner.frontends.native import CallNext, Context, Router
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram

FAST = PollingOptions(timeout=1, backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        yield client


def update_of(tg: FakeTelegram) -> dict:
    return tg.population.last_update


def tracer(log: list[str], name: str) -> Any:
    async def middleware(ctx: Context, call_next: CallNext) -> Any:
        log.append(f"{name}>")
        result = await call_next()
        log.append(f"<{name}")
        return result

    return middleware


async def test_outer_middlewares_wrap_inner_ones_and_the_handler(
    tg: FakeTelegram, bot: Bot
) -> None:
    parent, child = Router(), Router()
    log: list[str] = []
    parent.include(child)
    parent.use(tracer(log, "p1"))
    child.use(tracer(log, "c1"))
    parent.use(tracer(log, "p2"))
    child.use(tracer(log, "c2"))

    @child.message()
    async def handler(ctx: Context) -> str:
        log.append("handler")
        return "done"

    tg.user("Alice").send("hi")
    await parent(update_of(tg), bot)
    assert log == ["p1>", "p2>", "c1>", "c2>", "handler", "<c2", "<c1", "<p2", "<p1"]


async def test_middlewares_run_only_around_the_route_that_matched(
    tg: FakeTelegram, bot: Bot
) -> None:
    parent, child = Router(), Router()
    log: list[str] = []
    parent.include(child)
    child.use(tracer(log, "child"))
    parent.use(tracer(log, "parent"))

    @child.message(text="child")
    async def in_child(ctx: Context) -> None:
        log.append("in-child")

    @parent.message()
    async def in_parent(ctx: Context) -> None:
        log.append("in-parent")

    alice = tg.user("Alice")
    alice.send("other")
    await parent(update_of(tg), bot)
    alice.inline_query("no route")
    await parent(update_of(tg), bot)
    assert log == ["parent>", "in-parent", "<parent"]


async def test_a_middleware_short_circuits_and_follows_up(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    alice, mallory = tg.user("Alice"), tg.user("Mallory")
    blocked = {mallory.id}

    @router.use
    async def gate(ctx: Context, call_next: CallNext) -> None:
        user = ctx.user
        if user is not None and user["id"] in blocked:
            return
        ctx.data["greeting"] = "hello"
        await call_next()
        await ctx.answer("(sent after the handler)")

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"{ctx.data['greeting']} {ctx.text}")

    mallory.send("let me in")
    await router(update_of(tg), bot)
    alice.send("there")
    await router(update_of(tg), bot)
    assert tg.replies(mallory) == []
    assert [r["text"] for r in tg.replies(alice)] == ["hello there", "(sent after the handler)"]


async def test_a_middleware_catches_what_the_handler_raises(tg: FakeTelegram, bot: Bot) -> None:
    router = Router()
    caught: list[str] = []

    @router.use
    async def guard(ctx: Context, call_next: CallNext) -> None:
        try:
            await call_next()
        except LookupError as exc:
            caught.append(repr(exc))
            await ctx.answer("sorry")

    @router.message()
    async def broken(ctx: Context) -> None:
        raise KeyError("missing")

    alice = tg.user("Alice")
    alice.send("hi")
    await router(update_of(tg), bot)
    assert caught == ["KeyError('missing')"]
    assert [r["text"] for r in tg.replies(alice)] == ["sorry"]


async def test_middlewares_added_after_include_apply(tg: FakeTelegram, bot: Bot) -> None:
    parent, child = Router(), Router()
    log: list[str] = []

    @child.message()
    async def handler(ctx: Context) -> None:
        log.append("handler")

    parent.include(child)
    tg.user("Alice").send("hi")
    update = update_of(tg)
    await parent(update, bot)
    parent.use(tracer(log, "late"))
    await parent(update, bot)
    assert log == ["handler", "late>", "handler", "<late"]


async def test_middlewares_run_under_the_runtime(tg: FakeTelegram) -> None:
    router = Router()
    started: list[int] = []

    @router.use
    async def count(ctx: Context, call_next: CallNext) -> None:
        started.append(ctx.update_id)
        ctx.data["n"] = len(started)
        await call_next()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(f"{ctx.data['n']}: {ctx.text}")

    settings = Settings(polling=FAST, grace=5.0)
    runner = Runner(router, token=tg.token, api_url=tg.api_url, settings=settings)
    task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
    alice = tg.user("Alice")
    alice.send("a")
    alice.send("b")
    replies = await tg.wait_for_replies(alice, 2, timeout=10)
    assert [r["text"] for r in replies] == ["1: a", "2: b"]
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
