"""Start-up: a stop is honoured at once, whatever start-up is waiting for; an unreachable API
(network errors, 5xx, 429) is retried with backoff for ``start_timeout`` before it is reported
as a ConfigError naming the API."""

from __future__ import annotations

import asyncio
import time

import pytest
from runtime_support import LogWatch, echo, free_port, make_runner, serving, until

from tgrunner.errors import ConfigError
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram, Faults

# How soon serve() must return after a stop during start-up.
AT_ONCE = 1.0


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "clean"])
async def test_a_stop_while_get_me_hangs_returns_at_once(tg: FakeTelegram, fast: bool) -> None:
    tg.pause()  # getMe reaches the server and is held there: start-up is waiting for it
    runner = make_runner(tg.api_url, tg.token, echo)
    task = serving(runner)
    await until(tg.wait_for(lambda: tg.held == 1), task)
    runner.stop(fast=fast)
    started = time.monotonic()
    async with asyncio.timeout(AT_ONCE):
        code = await task
    assert time.monotonic() - started < AT_ONCE
    assert code == (1 if fast else 0)
    assert tg.calls("getUpdates") == []  # it never started fetching


async def test_a_stop_before_serve_returns_at_once(tg: FakeTelegram) -> None:
    tg.pause()
    runner = make_runner(tg.api_url, tg.token, echo)
    runner.stop()
    async with asyncio.timeout(AT_ONCE):
        assert await serving(runner) == 0
    assert tg.calls() == []


@pytest.mark.parametrize("failure", ["refused", "flood"])
async def test_a_stop_during_start_up_retries_returns_at_once(
    tg: FakeTelegram, failure: str
) -> None:
    # The default backoff and start_timeout (60 s): a stop must not wait for either.
    if failure == "refused":
        api_url, text = f"http://127.0.0.1:{free_port()}", "getMe failed"
    else:
        tg.faults = Faults(flood_rate=1.0, retry_after=30, methods=frozenset({"getMe"}))
        api_url, text = tg.api_url, "getMe failed"
    runner = make_runner(api_url, tg.token, echo, settings=Settings())
    with LogWatch(text) as retrying:
        task = serving(runner)
        await until(retrying.wait(), task)
    assert not task.done(), "start-up gave up instead of retrying"
    runner.stop(fast=True)
    async with asyncio.timeout(AT_ONCE):
        assert await task == 1


async def test_server_errors_at_start_are_retried_until_the_api_answers(tg: FakeTelegram) -> None:
    tg.faults = Faults(error_rate=1.0, methods=frozenset({"getMe"}))
    runner = make_runner(tg.api_url, tg.token, echo)
    task = serving(runner)
    # More failures than the old start-up's three tries.
    await until(tg.wait_for(lambda: len(tg.calls("getMe")) >= 6), task)
    assert not task.done(), "start-up gave up on a 5xx"
    tg.faults = None
    alice = tg.user("Alice")
    alice.send("hello")
    [reply] = await tg.wait_for_replies(alice, 1, timeout=10)
    assert reply["text"] == "hello"
    assert {c.status for c in tg.calls("getMe")} >= {200}
    runner.stop()
    async with asyncio.timeout(10):
        assert await task == 0


async def test_flood_control_at_start_waits_retry_after(tg: FakeTelegram) -> None:
    tg.faults = Faults(flood_rate=1.0, retry_after=1, methods=frozenset({"getMe"}))
    runner = make_runner(tg.api_url, tg.token, echo)
    task = serving(runner)
    await until(tg.wait_for(lambda: len(tg.calls("getMe")) >= 1), task)
    refused_at = time.monotonic()
    tg.faults = None
    await until(tg.wait_until_polling(timeout=10), task)
    assert not task.done(), "start-up gave up on a 429"
    assert time.monotonic() - refused_at >= 0.9  # it waited retry_after, as Telegram asks
    alice = tg.user("Alice")
    alice.send("hi")
    await tg.wait_for_replies(alice, 1, timeout=10)
    runner.stop()
    async with asyncio.timeout(10):
        assert await task == 0


async def test_an_api_that_comes_up_later_is_waited_for() -> None:
    port = free_port()
    fake = FakeTelegram(port=port)
    runner = make_runner(fake.api_url, fake.token, echo)
    with LogWatch("getMe failed") as refused:
        task = serving(runner)
        await until(refused.wait(5), task)  # connections refused, five times over
    assert not task.done(), "start-up gave up while the API was down"
    async with fake:
        alice = fake.user("Alice")
        alice.send("up")
        [reply] = await fake.wait_for_replies(alice, 1, timeout=10)
        assert reply["text"] == "up"
        runner.stop()
        async with asyncio.timeout(10):
            assert await task == 0


async def test_an_api_never_reachable_is_a_config_error_after_start_timeout() -> None:
    api_url = f"http://127.0.0.1:{free_port()}"
    # The default backoff cap (30 s): the last try still comes at start_timeout, not before.
    settings = Settings(polling=PollingOptions(timeout=1, backoff_base=0.01, start_timeout=1.0))
    token = "123:AAtesttesttesttesttesttesttesttestt"
    runner = make_runner(api_url, token, echo, settings=settings)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"Cannot reach the Bot API at {api_url}"):
        async with asyncio.timeout(10):
            await serving(runner)
    assert 1.0 <= time.monotonic() - started < 2.0
