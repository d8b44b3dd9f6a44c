"""Flood limits (429 with retry_after), injected latency, 5xx errors, connection resets, raw
answers and pausing: all off by default, and changeable while the server runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tgrunner.testing import FakeTelegram, Faults, FloodLimits

Call = Callable[..., Awaitable[tuple[int, dict[str, Any], Any]]]

ALICE = {"id": 1001, "type": "private", "first_name": "Alice"}
BOB = {"id": 1002, "type": "private", "first_name": "Bob"}
GROUP = {"id": -100123, "type": "supergroup", "title": "Friends"}


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        for chat in (ALICE, BOB, GROUP):
            fake.state.register_chat(chat)
        yield fake


@pytest.fixture
async def api(tg: FakeTelegram) -> AsyncIterator[Call]:
    async with aiohttp.ClientSession() as session:

        async def call(method: str, **params: Any) -> tuple[int, dict[str, Any], Any]:
            url = f"{tg.api_url}/bot{tg.token}/{method}"
            async with session.post(url, json=params) as response:
                return response.status, await response.json(content_type=None), response.headers

        yield call


async def send(api: Call, chat: dict[str, Any], text: str = "x") -> tuple[int, dict[str, Any]]:
    status, body, _ = await api("sendMessage", chat_id=chat["id"], text=text)
    return status, body


async def test_everything_is_off_by_default(tg: FakeTelegram, api: Call) -> None:
    for i in range(50):
        assert (await send(api, ALICE, str(i)))[0] == 200


async def test_per_chat_limit_with_a_private_burst(tg: FakeTelegram, api: Call) -> None:
    tg.flood = FloodLimits(per_chat_per_second=0.5, private_burst=2)
    assert (await send(api, ALICE))[0] == 200
    assert (await send(api, ALICE))[0] == 200
    status, body, headers = await api("sendMessage", chat_id=ALICE["id"], text="too much")
    assert status == 429
    retry_after = body["parameters"]["retry_after"]
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }
    assert 1 <= retry_after <= 2
    assert headers["Retry-After"] == str(retry_after)
    # Another chat has its own bucket; other methods are not counted.
    assert (await send(api, BOB))[0] == 200
    assert (await api("getMe"))[0] == 200
    # Switched off at runtime.
    tg.flood = None
    assert (await send(api, ALICE))[0] == 200


async def test_group_limit_per_minute(tg: FakeTelegram, api: Call) -> None:
    tg.flood = FloodLimits(per_group_per_minute=3)
    for _ in range(3):
        assert (await send(api, GROUP))[0] == 200
    status, body = await send(api, GROUP)
    assert status == 429
    assert body["parameters"]["retry_after"] >= 1
    assert (await send(api, ALICE))[0] == 200


async def test_global_limit(tg: FakeTelegram, api: Call) -> None:
    tg.flood = FloodLimits(global_per_second=2)
    assert (await send(api, ALICE))[0] == 200
    assert (await send(api, BOB))[0] == 200
    status, body = await send(api, GROUP)
    assert status == 429
    assert body["parameters"] == {"retry_after": 1}


async def test_flood_limits_from_the_constructor() -> None:
    async with FakeTelegram(flood=FloodLimits(per_chat_per_second=1, private_burst=1)) as tg:
        tg.state.register_chat(ALICE)
        async with aiohttp.ClientSession() as session:
            url = f"{tg.api_url}/bot{tg.token}/sendMessage"
            statuses = []
            for _ in range(2):
                async with session.post(url, json={"chat_id": ALICE["id"], "text": "x"}) as r:
                    statuses.append(r.status)
    assert statuses == [200, 429]


async def test_server_errors(tg: FakeTelegram, api: Call) -> None:
    tg.faults = Faults(error_rate=1.0, seed=3)
    seen = set()
    for _ in range(20):
        status, body, _ = await api("getMe")
        assert status in (500, 502)
        assert body["ok"] is False
        assert body["error_code"] == status
        seen.add(status)
    assert seen == {500, 502}
    assert tg.replies(ALICE) == []
    tg.faults = None
    assert (await api("getMe"))[0] == 200


async def test_faults_for_some_methods_only(tg: FakeTelegram, api: Call) -> None:
    tg.faults = Faults(error_rate=1.0, methods=frozenset({"sendmessage"}))
    assert (await api("getMe"))[0] == 200
    assert (await send(api, ALICE))[0] in (500, 502)


async def test_a_429_storm_on_some_chats_only(tg: FakeTelegram, api: Call) -> None:
    tg.faults = Faults(flood_chats=frozenset({ALICE["id"], GROUP["id"]}), retry_after=10)
    for _ in range(3):  # every time, not once
        status, body, headers = await api("sendMessage", chat_id=ALICE["id"], text="x")
        assert status == 429 and headers["Retry-After"] == "10"
        assert body["parameters"] == {"retry_after": 10}
    assert (await send(api, GROUP))[0] == 429
    # Other chats, uncounted methods and methods without a chat are not touched.
    assert (await send(api, BOB))[0] == 200
    assert (await api("sendChatAction", chat_id=ALICE["id"], action="typing"))[0] == 200
    assert (await api("getMe"))[0] == 200
    # Recorded with the chat, as Telegram's answer; nothing was sent into the chat.
    floods = [r for r in tg.calls("sendMessage") if r.status == 429]
    assert [r.params["chat_id"] for r in floods] == [ALICE["id"]] * 3 + [GROUP["id"]]
    assert tg.replies(ALICE) == []
    # With flood limits too: the storm's chats get the storm's 429, the others the limits'.
    tg.flood = FloodLimits(per_chat_per_second=0.01, private_burst=1)
    assert (await send(api, ALICE))[1]["parameters"] == {"retry_after": 10}
    assert (await send(api, BOB))[0] == 200
    assert (await send(api, BOB))[1]["parameters"] == {"retry_after": 100}
    tg.faults = None
    assert (await send(api, ALICE))[0] == 200


async def test_raw_answers_that_are_not_the_bot_apis(tg: FakeTelegram, api: Call) -> None:
    tg.faults = Faults(answer=b'{"ok":true,"result":[1,2]}', methods=frozenset({"getupdates"}))
    assert (await api("getUpdates"))[:2] == (200, {"ok": True, "result": [1, 2]})
    assert (await api("getMe"))[1]["result"]["is_bot"] is True
    tg.faults = Faults(answer=b"[]", latency=0.05)
    assert (await api("getMe"))[:2] == (200, [])
    assert [r.response for r in tg.calls("getUpdates")] == [b'{"ok":true,"result":[1,2]}']


async def test_connection_resets(tg: FakeTelegram) -> None:
    tg.faults = Faults(reset_rate=1.0)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{tg.api_url}/bot{tg.token}/getMe") as r:
                await r.read()
    assert tg.calls("getMe") == []
    tg.faults = Faults(reset_rate=0.0)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{tg.api_url}/bot{tg.token}/getMe") as r,
    ):
        assert r.status == 200


async def test_latency_fixed_or_per_method(tg: FakeTelegram, api: Call) -> None:
    loop = asyncio.get_running_loop()
    tg.faults = Faults(latency=lambda method: 0.2 if method == "getMe" else 0.0)
    started = loop.time()
    assert (await api("getMe"))[0] == 200
    assert loop.time() - started >= 0.19
    started = loop.time()
    assert (await send(api, ALICE))[0] == 200
    assert loop.time() - started < 0.19
    tg.faults = Faults(latency=0.1)
    started = loop.time()
    assert (await send(api, ALICE))[0] == 200
    assert loop.time() - started >= 0.09


async def test_pause_holds_requests_until_resume(tg: FakeTelegram, api: Call) -> None:
    tg.pause()
    held = asyncio.ensure_future(send(api, ALICE, "held"))
    await tg.wait_for(lambda: tg.held == 1)
    assert not held.done()
    assert tg.replies(ALICE) == []
    tg.resume()
    status, body = await held
    assert status == 200
    assert body["result"]["text"] == "held"


def test_options_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Faults(error_rate=2.0)
    with pytest.raises(ValueError, match="per_chat_per_second"):
        FloodLimits(per_chat_per_second=0)
    with pytest.raises(ValueError, match="flood_chats"):
        Faults(flood_chats="1001")  # type: ignore[arg-type]
    assert Faults(flood_chats={1, -2}).flood_chats == frozenset({1, -2})  # type: ignore[arg-type]
