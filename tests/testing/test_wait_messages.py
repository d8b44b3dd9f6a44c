"""A wait that times out says what it waited for and what came instead: the chat (id and name),
the count and the replies that arrived; the method and the calls that arrived; the polling that
never started; the predicate that stayed false."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tgrunner.testing import FakeTelegram

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]

SHORT = 0.2


async def test_replies_name_the_chat_the_count_and_what_arrived(
    tg: FakeTelegram, api: Call
) -> None:
    alice = tg.user("Alice")
    assert (await api("sendMessage", chat_id=alice.id, text="hi"))[0] == 200
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for_replies(alice, 2, timeout=SHORT)
    assert str(caught.value) == (
        f"waited 0.2 s for 2 replies in chat {alice.id} (Alice): 1 arrived: ['hi']"
    )


async def test_replies_name_a_group_by_its_title_and_say_none_arrived(tg: FakeTelegram) -> None:
    group = tg.group("Team chat")
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for_replies(group, 1, timeout=SHORT)
    assert str(caught.value) == (
        f"waited 0.2 s for 1 reply in chat {group.id} (Team chat): none arrived"
    )


async def test_replies_list_media_by_kind_and_the_latest_of_many(
    tg: FakeTelegram, api: Call
) -> None:
    bob = tg.user("Bob", last_name="Stone")
    for n in range(11):
        await api("sendMessage", chat_id=bob.id, text=f"n{n}")
    await api("sendLocation", chat_id=bob.id, latitude=1.0, longitude=2.0)
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for_replies(bob.chat, 13, timeout=SHORT)
    message = str(caught.value)
    assert f"in chat {bob.id} (Bob Stone): 12 arrived: [… 2 earlier, 'n2', " in message
    assert message.endswith("'n9', 'n10', location]")


async def test_replies_show_the_bots_failed_calls_in_that_chat(tg: FakeTelegram, api: Call) -> None:
    alice = tg.user("Alice")
    status, _ = await api("sendMessage", chat_id=alice.id, text="")
    assert status == 400
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for_replies(alice, 1, timeout=SHORT)
    message = str(caught.value)
    assert message.startswith(f"waited 0.2 s for 1 reply in chat {alice.id} (Alice): none arrived")
    assert message.endswith(
        "; failed calls in this chat: [sendMessage 400 'Bad Request: message text is empty']"
    )


async def test_replies_say_when_the_bot_never_fetched_the_updates(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    alice.send("hello?")
    alice.send("anyone?")
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for_replies(alice, 1, timeout=SHORT)
    assert str(caught.value).endswith(
        "none arrived; 2 updates not yet fetched by the bot (is it running, against this "
        "FakeTelegram's api_url and token?)"
    )


async def test_call_names_the_method_and_the_calls_that_arrived(
    tg: FakeTelegram, api: Call
) -> None:
    alice = tg.user("Alice")
    await api("getMe")
    await api("sendMessage", chat_id=alice.id, text="one")
    await api("sendMessage", chat_id=alice.id, text="two")
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for_call("sendphoto", timeout=SHORT)
    assert str(caught.value) == (
        "waited 0.2 s for a sendPhoto call: none arrived; recorded calls: getMe ×1, sendMessage ×2"
    )


async def test_call_shows_what_a_where_filter_refused(tg: FakeTelegram, api: Call) -> None:
    alice = tg.user("Alice")
    await api("sendMessage", chat_id=alice.id, text="one")
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for_call(
            "sendMessage", timeout=SHORT, where=lambda r: r.params["text"] == "two"
        )
    assert re.fullmatch(
        r"waited 0\.2 s for a sendMessage call matching where=<lambda> "
        r"\(test_wait_messages\.py:\d+\): none arrived; 1 sendMessage call did not match: "
        rf"\[\{{'chat_id': {alice.id}, 'text': 'one'\}}\]; recorded calls: sendMessage ×1",
        str(caught.value),
    )


async def test_call_says_when_nothing_is_recorded() -> None:
    async with FakeTelegram(record=False) as tg:
        with pytest.raises(TimeoutError) as caught:
            await tg.wait_for_call("sendMessage", timeout=SHORT)
    assert str(caught.value).endswith(
        "FakeTelegram keeps no record (record=False), so no calls can be shown"
    )


async def test_polling_lists_the_calls_and_a_webhook_in_the_way(
    tg: FakeTelegram, api: Call
) -> None:
    await api("getMe")
    await api("setWebhook", url="https://example.com/hook")
    assert (await api("getUpdates"))[0] == 409
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_until_polling(timeout=SHORT)
    message = str(caught.value)
    assert message.startswith(
        f"waited 0.2 s for the bot to poll: no getUpdates call is waiting or arrived at "
        f"{tg.api_url} since the wait began; recorded calls: getMe ×1, setWebhook ×1, "
        "getUpdates ×1; getUpdates failed: [getUpdates 409 \"Conflict: can't use getUpdates "
        'method while webhook is active; use deleteWebhook to delete the webhook first"]'
    )
    assert message.endswith("; a webhook is set, so Telegram would not answer getUpdates either")


async def test_polling_says_no_call_arrived_at_all(tg: FakeTelegram) -> None:
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_until_polling(timeout=SHORT)
    assert str(caught.value) == (
        f"waited 0.2 s for the bot to poll: no getUpdates call is waiting or arrived at "
        f"{tg.api_url} since the wait began; no call at all reached this FakeTelegram"
    )


def never() -> bool:
    return False


async def test_wait_for_names_the_predicate(tg: FakeTelegram) -> None:
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for(never, timeout=SHORT)
    assert str(caught.value) == "waited 0.2 s for never to become true; it stayed false"
    with pytest.raises(TimeoutError) as caught:
        await tg.wait_for(lambda: False, timeout=SHORT)
    assert re.fullmatch(
        r"waited 0\.2 s for <lambda> \(test_wait_messages\.py:\d+\) to become true; "
        r"it stayed false",
        str(caught.value),
    )


def test_the_sync_twins_and_a_foreign_loop_carry_the_same_messages() -> None:
    with FakeTelegram().in_thread() as tg:
        alice = tg.user("Alice")
        with pytest.raises(TimeoutError) as caught:
            tg.wait_for_replies_sync(alice, 1, timeout=SHORT)
        assert str(caught.value) == (
            f"waited 0.2 s for 1 reply in chat {alice.id} (Alice): none arrived"
        )
        with pytest.raises(TimeoutError, match=r"^waited 0\.2 s for a sendMessage call: none"):
            tg.wait_for_call_sync("sendMessage", timeout=SHORT)
        with pytest.raises(TimeoutError, match=r"^waited 0\.2 s for the bot to poll: "):
            tg.wait_until_polling_sync(timeout=SHORT)
        with pytest.raises(TimeoutError, match=r"^waited 0\.2 s for never to become true"):
            tg.wait_for_sync(never, timeout=SHORT)


async def test_an_async_wait_on_a_fake_in_a_thread_carries_the_message() -> None:
    with FakeTelegram().in_thread() as tg:
        alice = tg.user("Alice")
        with pytest.raises(TimeoutError) as caught:
            await tg.wait_for_replies(alice, 3, timeout=SHORT)
        assert str(caught.value) == (
            f"waited 0.2 s for 3 replies in chat {alice.id} (Alice): none arrived"
        )
