"""getUpdates as Telegram serves it: confirmation, negative offsets, limits, long polling,
allowed_updates and the two 409 conflicts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tgrunner.testing import FakeTelegram

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]

CHAT = {"id": 1001, "type": "private", "first_name": "Alice"}
ALICE = {"id": 1001, "is_bot": False, "first_name": "Alice"}


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        fake.state.register_chat(CHAT)
        yield fake


def message(tg: FakeTelegram, text: str) -> dict[str, Any]:
    """A user's message as an update payload."""
    return {
        "message_id": tg.state.next_message_id(CHAT["id"]),
        "from": ALICE,
        "chat": CHAT,
        "date": tg.state.now(),
        "text": text,
    }


def push(tg: FakeTelegram, *texts: str) -> list[dict[str, Any]]:
    return [tg.state.push_update("message", message(tg, t)) for t in texts]


async def waiting_poll(tg: FakeTelegram, api: Call, **params: Any) -> asyncio.Task[Any]:
    """Start a long poll and return once the fake holds it."""
    task = asyncio.ensure_future(api("getUpdates", timeout=30, **params))
    await tg.wait_for(lambda: tg.state.primary.long_poll is not None)
    return task


async def test_short_poll_of_an_empty_queue_returns_nothing(api: Call) -> None:
    assert await api("getUpdates") == (200, {"ok": True, "result": []})


async def test_updates_come_in_order_and_an_offset_confirms_them(
    tg: FakeTelegram, api: Call
) -> None:
    pushed = push(tg, "one", "two", "three")
    status, body = await api("getUpdates")
    assert status == 200
    got = body["result"]
    assert [u["message"]["text"] for u in got] == ["one", "two", "three"]
    ids = [u["update_id"] for u in got]
    assert ids == sorted(ids)
    assert ids[0] >= 100_000_000
    assert got == pushed
    # Unconfirmed updates are served again.
    assert (await api("getUpdates"))[1]["result"] == got
    # offset confirms everything below it.
    assert [u["update_id"] for u in (await api("getUpdates", offset=ids[1]))[1]["result"]] == ids[
        1:
    ]
    assert (await api("getUpdates", offset=ids[-1] + 1))[1]["result"] == []
    assert tg.pending_updates == 0


async def test_negative_offset_keeps_only_the_last_updates(tg: FakeTelegram, api: Call) -> None:
    push(tg, "1", "2", "3", "4", "5")
    got = (await api("getUpdates", offset=-2))[1]["result"]
    assert [u["message"]["text"] for u in got] == ["4", "5"]
    # The earlier ones are forgotten for good.
    again = (await api("getUpdates"))[1]["result"]
    assert [u["message"]["text"] for u in again] == ["4", "5"]


async def test_limit_is_clamped_to_1_to_100(tg: FakeTelegram, api: Call) -> None:
    push(tg, *[str(i) for i in range(120)])
    assert len((await api("getUpdates", limit=0))[1]["result"]) == 1
    assert len((await api("getUpdates", limit=2))[1]["result"]) == 2
    assert len((await api("getUpdates", limit=1000))[1]["result"]) == 100
    assert len((await api("getUpdates"))[1]["result"]) == 100


async def test_long_poll_returns_as_soon_as_an_update_exists(tg: FakeTelegram, api: Call) -> None:
    loop = asyncio.get_running_loop()
    task = await waiting_poll(tg, api)
    started = loop.time()
    push(tg, "wake up")
    status, body = await task
    assert status == 200
    assert [u["message"]["text"] for u in body["result"]] == ["wake up"]
    # Far below the 30 s poll timeout.
    assert loop.time() - started < 2.0


async def test_long_poll_times_out_with_an_empty_list(api: Call) -> None:
    assert await api("getUpdates", timeout=1) == (200, {"ok": True, "result": []})


async def test_the_older_of_two_long_polls_gets_409(tg: FakeTelegram, api: Call) -> None:
    first = await waiting_poll(tg, api)
    second = asyncio.ensure_future(api("getUpdates", timeout=30))
    status, body = await first
    assert status == 409
    assert body == {
        "ok": False,
        "error_code": 409,
        "description": "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running",
    }
    await tg.wait_for(lambda: tg.state.primary.long_poll is not None)
    push(tg, "for the newer one")
    status, body = await second
    assert status == 200
    assert len(body["result"]) == 1


async def test_a_short_poll_does_not_end_a_waiting_long_poll(tg: FakeTelegram, api: Call) -> None:
    waiting = await waiting_poll(tg, api)
    assert (await api("getUpdates"))[1]["result"] == []
    assert not waiting.done()
    push(tg, "x")
    assert (await waiting)[0] == 200


async def test_get_updates_while_a_webhook_is_set_is_a_conflict(api: Call) -> None:
    assert (await api("setWebhook", url="http://127.0.0.1:9/hook"))[0] == 200
    status, body = await api("getUpdates")
    assert status == 409
    assert body["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; "
        "use deleteWebhook to delete the webhook first"
    )
    assert (await api("deleteWebhook"))[0] == 200
    assert (await api("getUpdates"))[0] == 200


async def test_set_webhook_ends_a_waiting_long_poll(tg: FakeTelegram, api: Call) -> None:
    waiting = await waiting_poll(tg, api)
    await api("setWebhook", url="http://127.0.0.1:9/hook")
    status, body = await waiting
    assert status == 409
    assert body["description"] == "Conflict: terminated by setWebhook request"


def reaction(tg: FakeTelegram) -> dict[str, Any]:
    return {
        "chat": CHAT,
        "message_id": 1,
        "user": ALICE,
        "date": tg.state.now(),
        "old_reaction": [],
        "new_reaction": [{"type": "emoji", "emoji": "👍"}],
    }


def member_change(tg: FakeTelegram) -> dict[str, Any]:
    member = {"status": "member", "user": ALICE}
    return {
        "chat": CHAT,
        "from": ALICE,
        "date": tg.state.now(),
        "old_chat_member": {"status": "left", "user": ALICE},
        "new_chat_member": member,
    }


async def kinds(api: Call, **params: Any) -> list[str]:
    status, body = await api("getUpdates", **params)
    assert status == 200
    got = body["result"]
    if got:
        await api("getUpdates", offset=got[-1]["update_id"] + 1)
    return [next(k for k in u if k != "update_id") for u in got]


async def test_allowed_updates_default_leaves_out_member_and_reaction_kinds(
    tg: FakeTelegram, api: Call
) -> None:
    tg.state.push_update("chat_member", member_change(tg))
    tg.state.push_update("message_reaction", reaction(tg))
    push(tg, "kept")
    assert await kinds(api) == ["message"]


async def test_allowed_updates_explicit_list_replaces_and_empty_list_restores_default(
    tg: FakeTelegram, api: Call
) -> None:
    # An explicit list replaces the setting; it applies to updates created after the call.
    assert await kinds(api, allowed_updates=["chat_member", "message_reaction"]) == []
    tg.state.push_update("chat_member", member_change(tg))
    tg.state.push_update("message_reaction", reaction(tg))
    push(tg, "dropped")
    assert await kinds(api) == ["chat_member", "message_reaction"]
    # Not specified: the previous setting stays.
    push(tg, "still dropped")
    tg.state.push_update("message_reaction", reaction(tg))
    assert await kinds(api) == ["message_reaction"]
    # An empty list restores the default.
    assert await kinds(api, allowed_updates=[]) == []
    tg.state.push_update("message_reaction", reaction(tg))
    push(tg, "kept")
    assert await kinds(api) == ["message"]


async def test_allowed_updates_as_a_json_string(tg: FakeTelegram, api: Call) -> None:
    assert await kinds(api, allowed_updates='["message_reaction"]') == []
    tg.state.push_update("message_reaction", reaction(tg))
    push(tg, "dropped")
    assert await kinds(api) == ["message_reaction"]
    info = (await api("getWebhookInfo"))[1]["result"]
    assert info["allowed_updates"] == ["message_reaction"]


async def test_webhook_info_while_polling(tg: FakeTelegram, api: Call) -> None:
    push(tg, "a", "b")
    status, body = await api("getWebhookInfo")
    assert status == 200
    assert body["result"] == {"url": "", "has_custom_certificate": False, "pending_update_count": 2}
