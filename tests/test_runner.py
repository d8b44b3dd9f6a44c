"""The single-process runtime against FakeTelegram over real HTTP: order, safe offsets,
errors, time limits, backpressure and Telegram's error answers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from replies import tally
from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.frontends.native.router import Context, Router
from tgrunner.intake.options import IntakeOptions
from tgrunner.keys import default_keys
from tgrunner.runtime.runner import Runner
from tgrunner.scheduler import SchedulerOptions
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram, Faults

FAST = PollingOptions(timeout=1, backoff_base=0.01, backoff_cap=0.05)


def make_runner(tg: FakeTelegram, handler: Any, **kwargs: Any) -> Runner:
    settings = kwargs.pop("settings", None) or Settings(polling=FAST, grace=5.0)
    return Runner(handler, token=tg.token, api_url=tg.api_url, settings=settings, **kwargs)


async def serving(runner: Runner) -> asyncio.Task[int]:
    return asyncio.get_running_loop().create_task(runner.serve(install_signals=False))


async def test_echo_keeps_per_chat_order(tg: FakeTelegram) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        # Later messages of a chat finish sooner if run concurrently: order must still hold.
        await asyncio.sleep(0.002 * (5 - int(ctx.text or 0) % 5))
        await ctx.reply(ctx.text or "")

    runner = make_runner(tg, router)
    task = await serving(runner)
    users = [tg.user(f"U{i}") for i in range(8)]
    sent: dict[int, list[str]] = {}
    n = 0
    for _round in range(10):
        for u in users:
            n += 1
            u.send(str(n))
            sent.setdefault(u.chat.id, []).append(str(n))
    await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= n, timeout=20)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0  # the final confirmation went through


async def test_offset_never_passes_an_unfinished_update(tg: FakeTelegram) -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        started.append(update["update_id"])
        if update["message"]["text"] == "slow":
            await release.wait()

    strict = Settings(polling=FAST, grace=5.0, intake=IntakeOptions(journal=False))
    runner = make_runner(tg, handler, settings=strict)
    task = await serving(runner)
    slow_user, other = tg.user("Slow"), tg.user("Other")
    slow = slow_user.send("slow")
    for i in range(20):
        other.send(f"fast {i}")
    await tg.wait_for(lambda: len(started) == 21 and runner.stats.finished == 20, timeout=10)
    offsets = [r.params.get("offset") for r in tg.calls("getUpdates")]
    slow_id = slow["update_id"] if "update_id" in slow else started[0]
    assert all(o is None or o <= slow_id for o in offsets), offsets
    release.set()
    await tg.wait_for(lambda: runner.stats.finished == 21, timeout=10)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert tg.pending_updates == 0


async def test_failing_handler_reaches_hook_and_frees_the_chat(tg: FakeTelegram) -> None:
    errors: list[BaseException] = []
    router = Router()

    @router.message(text="boom")
    async def boom(ctx: Context) -> None:
        raise RuntimeError("boom")

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    runner = make_runner(tg, router, on_error=lambda update, exc: errors.append(exc))
    task = await serving(runner)
    alice = tg.user("Alice")
    alice.send("boom")
    alice.send("after")
    [reply] = await tg.wait_for_replies(alice, 1, timeout=10)
    assert reply["text"] == "after"
    assert [str(e) for e in errors] == ["boom"]
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_time_limit_cancels_and_calls_the_hook(tg: FakeTelegram) -> None:
    timed_out: list[int] = []
    cancelled = asyncio.Event()
    router = Router()

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
    runner = make_runner(
        tg, router, settings=settings, on_timeout=lambda u: timed_out.append(u["update_id"])
    )
    task = await serving(runner)
    bob = tg.user("Bob")
    bob.send("hang")
    bob.send("next")
    [reply] = await tg.wait_for_replies(bob, 1, timeout=10)
    assert reply["text"] == "next"
    assert cancelled.is_set()
    assert len(timed_out) == 1
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_backpressure_bounds_what_is_fetched(tg: FakeTelegram) -> None:
    release = asyncio.Event()
    submitted = 0
    full = asyncio.Event()

    def keys(update: Mapping[str, Any]) -> tuple[str, ...]:
        # The scheduler asks for keys once per submitted update: count them here.
        nonlocal submitted
        submitted += 1
        if submitted == 10:
            full.set()
        return default_keys(update)

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        await release.wait()

    settings = Settings(
        polling=FAST, keys=keys, scheduler=SchedulerOptions(concurrency=4, max_pending=10)
    )
    runner = make_runner(tg, handler, settings=settings)
    task = await serving(runner)
    for i in range(50):
        tg.user(f"P{i}").send("x")
    await asyncio.wait_for(full.wait(), 10)
    # With no room left the source must not fetch: one more poll would show up here.
    polls = len(tg.calls("getUpdates"))
    with pytest.raises(TimeoutError):
        await tg.wait_for(lambda: len(tg.calls("getUpdates")) > polls, timeout=0.3)
    assert runner.stats.received == 10
    assert runner.scheduler.running == 4
    assert tg.pending_updates == 50  # nothing confirmed: nothing finished
    release.set()
    # Each finished batch is followed by a poll, which re-checks this.
    await tg.wait_for(lambda: runner.stats.finished == 50, 20)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert runner.stats.finished == 50
    assert submitted == 50


async def test_recovers_from_server_errors(tg: FakeTelegram) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    tg.faults = Faults(error_rate=0.5, methods=frozenset({"getUpdates"}), seed=3)
    runner = make_runner(tg, router)
    task = await serving(runner)
    carol = tg.user("Carol")
    for i in range(10):
        carol.send(str(i))
    replies = await tg.wait_for_replies(carol, 10, timeout=20)
    assert [r["text"] for r in replies] == [str(i) for i in range(10)]
    assert any(r.status >= 500 for r in tg.calls("getUpdates"))
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_flood_control_on_get_updates_waits_retry_after(tg: FakeTelegram) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    # Seed 1 floods the first poll (its first draw is 0.13), then lets most through.
    tg.faults = Faults(flood_rate=0.5, retry_after=1, methods=frozenset({"getUpdates"}), seed=1)
    runner = make_runner(tg, router)
    task = await serving(runner)
    dave = tg.user("Dave")
    for i in range(5):
        dave.send(str(i))
    replies = await tg.wait_for_replies(dave, 5, timeout=30)
    assert [r["text"] for r in replies] == [str(i) for i in range(5)]
    polls = tg.calls("getUpdates")
    floods = [i for i, r in enumerate(polls) if r.status == 429]
    assert floods, "the fault never fired"
    for i in floods:
        if i + 1 < len(polls):
            # Recorded times are answer times; the retry came no sooner than retry_after.
            assert polls[i + 1].time - polls[i].time >= 0.95
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_wrong_token_stops_with_a_clear_message(tg: FakeTelegram) -> None:
    bot_id = tg.token.partition(":")[0]
    runner = Runner(
        Router(),
        token=f"{bot_id}:AAwrongwrongwrongwrongwrongwrongwro",
        api_url=tg.api_url,
        settings=Settings(polling=FAST),
    )
    with pytest.raises(ConfigError, match="401 Unauthorized"):
        await asyncio.wait_for(runner.serve(install_signals=False), 10)


async def test_webhook_conflict_is_named(tg: FakeTelegram) -> None:
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        await bot.set_webhook("http://127.0.0.1:9/hook")
    runner = make_runner(tg, Router())
    with pytest.raises(ConfigError, match=r"webhook is set.*'tgrunner delete-webhook'"):
        await asyncio.wait_for(runner.serve(install_signals=False), 10)


async def test_other_poller_conflict_is_named(tg: FakeTelegram) -> None:
    hooks: list[str] = []

    async def startup() -> None:
        hooks.append("startup")

    async def shutdown() -> None:
        hooks.append("shutdown")

    runner = make_runner(
        tg,
        Router(),
        settings=Settings(polling=PollingOptions(timeout=5)),
        startup=startup,
        shutdown=shutdown,
    )
    task = await serving(runner)
    await tg.wait_until_polling(timeout=10)
    async with Bot(tg.token, api_url=tg.api_url) as other:
        # A second poller: the first one's long poll is terminated with 409.
        poll = asyncio.ensure_future(other.get_updates(timeout=1))
        with pytest.raises(ConfigError, match="Another instance is polling"):
            await asyncio.wait_for(task, 10)
        await poll
    # Polling failed, yet the front-end's shutdown ran (PTB persistence is flushed there).
    assert hooks == ["startup", "shutdown"]


def test_missing_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TGRUNNER_TOKEN"):
        Runner(Router())
