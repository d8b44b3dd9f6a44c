"""Webhook delivery: the secret header, max_connections, one update at a time per chat, retries
with the error shown in getWebhookInfo, and a method carried in the webhook's answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tgrunner.testing import FakeTelegram, WebhookRetry

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]
Reply = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


class Receiver:
    """A bot's webhook endpoint: records what arrives; ``answer`` decides each response."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.inflight = 0
        self.max_inflight = 0
        self.changed = asyncio.Event()
        self.answer: Reply = self.ok

    async def ok(self, update: dict[str, Any]) -> web.StreamResponse:
        return web.Response(text="")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        update = await request.json()
        self.received.append((update, dict(request.headers)))
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        self.changed.set()
        try:
            return await self.answer(update)
        finally:
            self.inflight -= 1
            self.changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(5.0):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def texts(self) -> list[str]:
        return [u["message"]["text"] for u, _ in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield rec, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(webhook_retry=WebhookRetry(base=0.01, cap=0.05)) as fake:
        yield fake


def chat(tg: FakeTelegram, chat_id: int) -> dict[str, Any]:
    c = {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
    tg.state.register_chat(c)
    return c


def say(tg: FakeTelegram, c: dict[str, Any], text: str) -> dict[str, Any]:
    user = {"id": c["id"], "is_bot": False, "first_name": c["first_name"]}
    payload = {
        "message_id": tg.state.next_message_id(c["id"]),
        "from": user,
        "chat": c,
        "date": tg.state.now(),
        "text": text,
    }
    return tg.state.push_update("message", payload)


async def test_updates_are_posted_as_json_with_the_secret_header(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    assert await api("setWebhook", url=url, secret_token="s3cret-Token_1") == (
        200,
        {"ok": True, "result": True},
    )
    update = say(tg, chat(tg, 1), "hello")
    await rec.until(lambda: len(rec.received) == 1)
    body, headers = rec.received[0]
    assert body == update
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret-Token_1"
    assert headers["Content-Type"].startswith("application/json")
    await tg.wait_for(lambda: tg.pending_updates == 0)
    info = (await api("getWebhookInfo"))[1]["result"]
    assert info["url"] == url
    assert info["pending_update_count"] == 0
    assert info["max_connections"] == 40


async def test_no_secret_header_without_a_secret(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    await api("setWebhook", url=url)
    say(tg, chat(tg, 1), "hello")
    await rec.until(lambda: len(rec.received) == 1)
    assert "X-Telegram-Bot-Api-Secret-Token" not in rec.received[0][1]


async def test_at_most_max_connections_deliveries_at_once(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    release = asyncio.Event()

    async def slow(update: dict[str, Any]) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    rec.answer = slow
    await api("setWebhook", url=url, max_connections=2)
    for i in range(6):
        say(tg, chat(tg, 100 + i), f"m{i}")
    await rec.until(lambda: rec.inflight == 2)
    assert len(rec.received) == 2
    assert tg.pending_updates == 6
    release.set()
    await rec.until(lambda: len(rec.received) == 6)
    assert rec.max_inflight == 2
    await tg.wait_for(lambda: tg.pending_updates == 0)


async def test_one_update_at_a_time_per_chat(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    gates = {"a1": asyncio.Event()}

    async def hold_a1(update: dict[str, Any]) -> web.StreamResponse:
        gate = gates.get(update["message"]["text"])
        if gate is not None:
            await gate.wait()
        return web.Response()

    rec.answer = hold_a1
    await api("setWebhook", url=url)
    a, b = chat(tg, 1), chat(tg, 2)
    say(tg, a, "a1")
    say(tg, a, "a2")
    say(tg, b, "b1")
    # b1 overtakes the chat that is busy; a2 waits for a1.
    await rec.until(lambda: "b1" in rec.texts() and rec.inflight == 1)
    assert rec.texts() == ["a1", "b1"]
    gates["a1"].set()
    await rec.until(lambda: len(rec.received) == 3)
    assert rec.texts() == ["a1", "b1", "a2"]


async def test_failed_delivery_is_retried_and_reported(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    failures = 2

    async def flaky(update: dict[str, Any]) -> web.StreamResponse:
        nonlocal failures
        if failures:
            failures -= 1
            return web.Response(status=500)
        return web.Response()

    rec.answer = flaky
    await api("setWebhook", url=url)
    c = chat(tg, 1)
    say(tg, c, "first")
    say(tg, c, "second")
    await rec.until(lambda: len(rec.received) == 4)
    # The failing update is retried until accepted, and its chat's next update waits.
    assert rec.texts() == ["first", "first", "first", "second"]
    await tg.wait_for(lambda: tg.pending_updates == 0)
    info = (await api("getWebhookInfo"))[1]["result"]
    assert (
        info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    )
    assert abs(info["last_error_date"] - tg.state.now()) <= 2


async def test_unreachable_webhook_reports_a_connection_error(tg: FakeTelegram, api: Call) -> None:
    # Port 9 (discard) is closed on loopback.
    await api("setWebhook", url="http://127.0.0.1:9/hook")
    say(tg, chat(tg, 1), "lost?")
    await tg.wait_for(lambda: tg.state.primary.last_error_message is not None)
    info = (await api("getWebhookInfo"))[1]["result"]
    assert info["pending_update_count"] == 1
    assert info["last_error_message"]


async def test_a_method_in_the_webhook_answer_is_executed(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver

    async def reply(update: dict[str, Any]) -> web.StreamResponse:
        message = update["message"]
        return web.json_response(
            {"method": "sendMessage", "chat_id": message["chat"]["id"], "text": "pong"}
        )

    rec.answer = reply
    await api("setWebhook", url=url)
    c = chat(tg, 7)
    say(tg, c, "ping")
    [sent] = await tg.wait_for_replies(c, 1)
    assert sent["text"] == "pong"
    assert tg.calls("sendMessage")[0].params["text"] == "pong"


async def test_get_methods_in_the_webhook_answer_are_ignored(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver

    async def reply(update: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"method": "getMe"})

    rec.answer = reply
    await api("setWebhook", url=url)
    say(tg, chat(tg, 7), "ping")
    await tg.wait_for(lambda: tg.pending_updates == 0)
    assert tg.calls("getMe") == []


async def test_delete_webhook_returns_undelivered_updates_to_get_updates(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    never = asyncio.Event()

    async def stuck(update: dict[str, Any]) -> web.StreamResponse:
        await never.wait()
        return web.Response()

    rec.answer = stuck
    await api("setWebhook", url=url, max_connections=1)
    c = chat(tg, 1)
    pushed = [say(tg, c, t) for t in ("a", "b", "c")]
    await rec.until(lambda: rec.inflight == 1)
    await api("deleteWebhook")
    got = (await api("getUpdates"))[1]["result"]
    assert got == pushed
    never.set()


async def test_delete_webhook_can_drop_pending_updates(tg: FakeTelegram, api: Call) -> None:
    await api("setWebhook", url="http://127.0.0.1:9/hook")
    say(tg, chat(tg, 1), "a")
    await api("deleteWebhook", drop_pending_updates=True)
    assert tg.pending_updates == 0
    assert (await api("getUpdates"))[1]["result"] == []


async def test_set_webhook_rejects_a_bad_secret(api: Call) -> None:
    status, body = await api("setWebhook", url="https://example.com/hook", secret_token="no spaces")
    assert status == 400
    assert body["description"].startswith("Bad Request")


async def test_callback_queries_go_one_at_a_time_per_user_across_chats(
    tg: FakeTelegram, api: Call, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    gate = asyncio.Event()

    async def hold_first(update: dict[str, Any]) -> web.StreamResponse:
        if update.get("callback_query", {}).get("data") == "q1":
            await gate.wait()
        return web.Response()

    rec.answer = hold_first
    await api("setWebhook", url=url)
    presser = {"id": 7, "is_bot": False, "first_name": "Ann"}
    group = {"id": -100, "type": "group", "title": "G"}
    tg.state.register_chat(group)
    for n, where in enumerate((chat(tg, 7), group), start=1):
        message = {"message_id": n, "chat": where, "date": tg.state.now(), "text": "menu"}
        tg.state.push_update(
            "callback_query",
            {"id": f"q{n}", "from": presser, "chat_instance": str(n), "message": message,
             "data": f"q{n}"},
        )  # fmt: skip
    other = say(tg, chat(tg, 8), "meanwhile")  # another user's chat is not held back
    await rec.until(lambda: len(rec.received) == 2)
    assert [u.get("callback_query", {}).get("data") for u, _ in rec.received] == ["q1", None]
    assert rec.received[1][0] == other
    gate.set()
    await rec.until(lambda: len(rec.received) == 3)
    assert rec.received[2][0]["callback_query"]["data"] == "q2"


def test_telegram_pace_doubles_from_2_s_up_to_60_s_and_honours_retry_after() -> None:
    pace = WebhookRetry.telegram()
    assert [pace.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert pace.delay(1, retry_after=30) == 30
    assert pace.delay(1, retry_after=600) == 60
    assert pace.timeout == 60 and pace.max_attempts is None
