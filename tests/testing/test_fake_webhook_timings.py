"""``WebhookTimings``: FakeTelegram records how long each webhook POST took to be answered,
2xx answers apart from the rest, and records nothing unless asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web

from tgrunner.testing import FakeTelegram, WebhookRetry, WebhookTimings

SLOW = 0.05  # seconds the endpoint holds each POST


@pytest.fixture
async def hook() -> AsyncIterator[tuple[str, list[int]]]:
    """A webhook endpoint holding every POST :data:`SLOW` s; answers 500 to the first one."""
    seen: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((await request.json())["update_id"])
        await asyncio.sleep(SLOW)  # the delay being measured, not a synchronisation
        return web.Response(status=500 if len(seen) == 1 else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", seen
    finally:
        await runner.cleanup()


async def _deliver_three(tg: FakeTelegram, url: str) -> None:
    async with ClientSession() as http:
        set_hook = f"{tg.api_url}/bot{tg.token}/setWebhook"
        async with http.post(set_hook, json={"url": url}) as answer:
            assert answer.status == 200
    alice = tg.user("Alice")
    for text in ("a", "b", "c"):
        alice.send(text)
    await tg.wait_for(lambda: tg.pending_updates == 0, timeout=10)


@pytest.mark.timeout(30)
async def test_each_answered_post_is_timed_and_failures_are_counted(
    hook: tuple[str, list[int]],
) -> None:
    url, seen = hook
    timings = WebhookTimings()
    retry = WebhookRetry(base=0.01, cap=0.05)
    async with FakeTelegram(webhook_retry=retry, webhook_timings=timings) as tg:
        await _deliver_three(tg, url)
    assert len(seen) == 4  # the first update twice: its 500, then its 200
    assert timings.failed == 1
    assert len(timings.ok) == 3
    assert all(SLOW * 0.9 <= t < SLOW + 2.0 for t in timings.ok), timings.ok


@pytest.mark.timeout(30)
async def test_nothing_is_recorded_by_default(hook: tuple[str, list[int]]) -> None:
    url, seen = hook
    async with FakeTelegram(webhook_retry=WebhookRetry(base=0.01, cap=0.05)) as tg:
        await _deliver_three(tg, url)
        assert tg.webhook_timings is None
    assert len(seen) == 4
