"""Routers nest with ``include()``: the tree stays live (routes, fallbacks and the bot's username
reach included routers whenever they are added), in registration order."""

from __future__ import annotations

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


def recorder(router: Router, hits: list[str], name: str, text: str | None = None) -> None:
    @router.message(text=text)
    async def hit(ctx: Context) -> None:
        hits.append(name)


async def test_routes_added_after_include_still_run(tg: FakeTelegram, bot: Bot) -> None:
    parent, child, grandchild = Router(), Router(), Router()
    parent.include(child)
    child.include(grandchild)
    hits: list[str] = []

    @grandchild.command("late")
    async def late(ctx: Context) -> None:
        hits.append(f"late:{ctx.args}")

    @child.on("inline_query")
    async def inline(ctx: Context) -> None:
        hits.append("inline")

    alice = tg.user("Alice")
    alice.send("/late now")
    await parent(update_of(tg), bot)
    alice.inline_query("cats")
    await parent(update_of(tg), bot)
    assert hits == ["late:now", "inline"]
    assert parent.kinds() == ["message", "inline_query"]


async def test_routes_run_in_registration_order_across_the_tree(tg: FakeTelegram, bot: Bot) -> None:
    parent, child = Router(), Router()
    hits: list[str] = []
    recorder(parent, hits, "parent-first", text="a")
    parent.include(child)
    recorder(parent, hits, "parent-after", text="b")
    recorder(child, hits, "child-a", text="a")
    recorder(child, hits, "child-b", text="b")
    recorder(parent, hits, "parent-rest")
    alice = tg.user("Alice")
    for text in ("a", "b", "c"):
        alice.send(text)
        await parent(update_of(tg), bot)
    assert hits == ["parent-first", "child-b", "parent-rest"]


async def test_the_parent_fallback_takes_what_included_routers_leave(
    tg: FakeTelegram, bot: Bot
) -> None:
    parent, child = Router(), Router()
    hits: list[str] = []
    parent.include(child)
    recorder(child, hits, "child", text="x")

    @parent.fallback
    async def rest(ctx: Context) -> None:
        hits.append(f"fallback:{ctx.text}")

    alice = tg.user("Alice")
    for text in ("x", "y"):
        alice.send(text)
        await parent(update_of(tg), bot)
    alice.inline_query("cats")
    await parent(update_of(tg), bot)
    assert hits == ["child", "fallback:y", "fallback:None"]


async def test_an_included_router_keeps_its_fallback(tg: FakeTelegram, bot: Bot) -> None:
    """A fallback is its router's last route: it takes what reached it and nothing took."""
    parent, child = Router(), Router()
    hits: list[str] = []

    @child.fallback
    async def child_rest(ctx: Context) -> None:
        hits.append(f"child-fallback:{ctx.kind}")

    recorder(parent, hits, "parent-first", text="a")
    parent.include(child)
    recorder(parent, hits, "unreachable")
    alice = tg.user("Alice")
    for text in ("a", "b"):
        alice.send(text)
        await parent(update_of(tg), bot)
    alice.inline_query("cats")
    await parent(update_of(tg), bot)
    assert hits == ["parent-first", "child-fallback:message", "child-fallback:inline_query"]


@pytest.mark.parametrize("named", ["before", "after"])
async def test_commands_of_included_routers_refuse_another_bots(
    tg: FakeTelegram, bot: Bot, named: str
) -> None:
    parent, child, grandchild = Router(), Router(), Router()
    me = tg.bot_user["username"]
    hits: list[str] = []

    @grandchild.command("help")
    async def help_(ctx: Context) -> None:
        hits.append(f"help:{ctx.args}")

    if named == "before":
        parent.set_username(me)
    child.include(grandchild)
    parent.include(child)
    if named == "after":
        parent.set_username(me)

    @parent.message()
    async def rest(ctx: Context) -> None:
        hits.append(f"other:{ctx.text}")

    alice = tg.user("Alice")
    for text in ("/help@otherbot x", f"/help@{me.upper()} y", "/help z"):
        alice.send(text)
        await parent(update_of(tg), bot)
    assert hits == ["other:/help@otherbot x", "help:y", "help:z"]


def test_include_refuses_a_cycle() -> None:
    a, b, c = Router(), Router(), Router()
    a.include(b)
    b.include(c)
    for parent, child in ((c, a), (b, b), (c, b)):
        with pytest.raises(ValueError, match="cycle"):
            parent.include(child)


async def test_one_router_included_twice_runs_in_both_places(tg: FakeTelegram, bot: Bot) -> None:
    top, shared = Router(), Router()
    hits: list[str] = []
    recorder(shared, hits, "shared", text="s")
    top.include(shared)
    recorder(top, hits, "top", text="t")
    top.include(shared)
    alice = tg.user("Alice")
    for text in ("s", "t"):
        alice.send(text)
        await top(update_of(tg), bot)
    assert hits == ["shared", "top"]
