"""Router error handlers: ``@router.error(*types)``, ``async def fn(ctx, exc)``. The nearest
router's matching handler takes the error, then its parents'; what none takes, or what a handler
raises, reaches the runtime as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tgrunner.client.bot import Bot
from tgrunner.frontends.native import CallNext, Context, Router
from tgrunner.runtime.runner import Runner
from tgrunner.scheduler import SchedulerOptions
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


def failing(router: Router, text: str, exc: Exception) -> None:
    @router.message(text=text)
    async def fail(ctx: Context) -> None:
        raise exc


def serving(router: Router, tg: FakeTelegram, **kwargs: Any) -> tuple[Runner, asyncio.Task[int]]:
    settings = kwargs.pop("settings", None) or Settings(polling=FAST, grace=5.0)
    runner = Runner(router, token=tg.token, api_url=tg.api_url, settings=settings, **kwargs)
    return runner, asyncio.get_running_loop().create_task(runner.serve(install_signals=False))


async def test_the_nearest_router_that_takes_the_error_wins(tg: FakeTelegram, bot: Bot) -> None:
    top, mid, leaf = Router(), Router(), Router()
    top.include(mid)
    mid.include(leaf)
    got: list[str] = []
    failing(leaf, "key", KeyError("k"))
    failing(leaf, "value", ValueError("v"))
    failing(mid, "zero", ZeroDivisionError("z"))

    @leaf.error(KeyError)
    async def leaf_keys(ctx: Context, exc: Exception) -> None:
        got.append(f"leaf:{exc!r}")

    @mid.error(LookupError, ValueError)
    async def mid_lookups(ctx: Context, exc: Exception) -> None:
        got.append(f"mid:{exc!r}")

    @top.error()
    async def top_all(ctx: Context, exc: Exception) -> None:
        got.append(f"top:{exc!r}:{ctx.text}")

    alice = tg.user("Alice")
    for text in ("key", "value", "zero"):
        alice.send(text)
        await top(update_of(tg), bot)
    assert got == ["leaf:KeyError('k')", "mid:ValueError('v')", "top:ZeroDivisionError('z'):zero"]


async def test_within_one_router_the_first_matching_handler_takes_it(
    tg: FakeTelegram, bot: Bot
) -> None:
    router = Router()
    got: list[str] = []
    failing(router, "key", KeyError("k"))
    failing(router, "other", RuntimeError("r"))

    @router.error(LookupError)
    async def lookups(ctx: Context, exc: Exception) -> None:
        got.append("lookup")

    @router.error()
    async def rest(ctx: Context, exc: Exception) -> None:
        got.append("rest")

    alice = tg.user("Alice")
    for text in ("key", "other"):
        alice.send(text)
        await router(update_of(tg), bot)
    assert got == ["lookup", "rest"]


async def test_a_raising_error_handler_passes_it_to_the_parent(tg: FakeTelegram, bot: Bot) -> None:
    top, child = Router(), Router()
    top.include(child)
    got: list[str] = []
    failing(child, "boom", KeyError("k"))

    @child.error()
    async def child_errors(ctx: Context, exc: Exception) -> None:
        got.append(f"child:{exc!r}")
        raise RuntimeError("child gave up") from exc

    @top.error(RuntimeError)
    async def top_errors(ctx: Context, exc: Exception) -> None:
        got.append(f"top:{exc!r}:{exc.__cause__!r}")

    tg.user("Alice").send("boom")
    await top(update_of(tg), bot)
    assert got == ["child:KeyError('k')", "top:RuntimeError('child gave up'):KeyError('k')"]


async def test_error_handlers_catch_what_middlewares_and_filters_raise(
    tg: FakeTelegram, bot: Bot
) -> None:
    top, child = Router(), Router()
    top.include(child)
    got: list[str] = []

    @child.use
    async def broken_middleware(ctx: Context, call_next: CallNext) -> None:
        if ctx.text == "mw":
            raise LookupError("middleware")
        await call_next()

    @child.message(where=lambda ctx: ctx.text != "filter" or 1 / 0 > 0)
    async def handler(ctx: Context) -> None:
        got.append("handled")

    @child.error(LookupError)
    async def child_errors(ctx: Context, exc: Exception) -> None:
        got.append(f"child:{exc!r}")

    @top.error()
    async def top_errors(ctx: Context, exc: Exception) -> None:
        got.append(f"top:{type(exc).__name__}")

    alice = tg.user("Alice")
    for text in ("mw", "filter", "ok"):
        alice.send(text)
        await top(update_of(tg), bot)
    assert got == ["child:LookupError('middleware')", "top:ZeroDivisionError", "handled"]


def test_error_needs_exception_types() -> None:
    router = Router()

    async def handler(ctx: Context, exc: Exception) -> None: ...

    with pytest.raises(TypeError, match=r"@router.error\(\)"):
        router.error(handler)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Exception"):
        router.error(KeyboardInterrupt)  # type: ignore[arg-type]


async def test_unhandled_and_reraised_errors_reach_the_runtime_hook(tg: FakeTelegram) -> None:
    router = Router()
    hooked: list[str] = []
    handled: list[str] = []
    failing(router, "unhandled", RuntimeError("nobody takes this"))
    failing(router, "taken", KeyError("k"))
    failing(router, "reraised", ValueError("v"))

    @router.error(KeyError)
    async def keys(ctx: Context, exc: Exception) -> None:
        handled.append(repr(exc))

    @router.error(ValueError)
    async def values(ctx: Context, exc: Exception) -> None:
        raise exc

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    runner, task = serving(router, tg, on_error=lambda update, exc: hooked.append(repr(exc)))
    alice = tg.user("Alice")
    for text in ("unhandled", "taken", "reraised", "after"):
        alice.send(text)
    [reply] = await tg.wait_for_replies(alice, 1, timeout=10)
    assert reply["text"] == "after"
    assert hooked == ["RuntimeError('nobody takes this')", "ValueError('v')"]
    assert handled == ["KeyError('k')"]
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_error_handlers_leave_the_time_limit_alone(tg: FakeTelegram) -> None:
    """Cancellation on a time limit is not an error: handlers never see it."""
    router = Router()
    timed_out: list[int] = []
    handled: list[BaseException] = []
    cancelled = asyncio.Event()

    @router.error()
    async def everything(ctx: Context, exc: Exception) -> None:
        handled.append(exc)

    @router.message(text="hang")
    async def hang(ctx: Context) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    settings = Settings(polling=FAST, scheduler=SchedulerOptions(handler_timeout=0.2))
    runner, task = serving(
        router, tg, settings=settings, on_timeout=lambda u: timed_out.append(u["update_id"])
    )
    bob = tg.user("Bob")
    bob.send("hang")
    bob.send("next")
    [reply] = await tg.wait_for_replies(bob, 1, timeout=10)
    assert reply["text"] == "next"
    assert cancelled.is_set()
    assert len(timed_out) == 1
    assert handled == []
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
