"""The scripted conversation both fidelity echo bots (aiogram's and PTB's) must answer."""

from __future__ import annotations

from typing import Any

from tgrunner.testing import FakeTelegram


def expected_replies(name: str) -> list[str]:
    return [f"Hello, {name}!", "one", "two", "three", "pong", f"bye from {name}"]


async def converse(tg: FakeTelegram, user: Any) -> list[dict[str, Any]]:
    """One user's side of the conversation; every step waits on the fake, never on a clock."""
    user.command("start")
    [menu] = await tg.wait_for_replies(user, 1)
    # A burst: the bot must answer it in order.
    one = user.send("one")
    two = user.send("two")
    user.command("echo", "three")
    await tg.wait_for_replies(user, 4)
    pressed = user.press(menu, data="ping")
    answer = await tg.wait_for_call(
        "answerCallbackQuery", where=lambda r: r.params["callback_query_id"] == pressed["id"]
    )
    assert answer.ok
    assert answer.params["text"] == "pong!"
    await tg.wait_for_replies(user, 5)
    bye = user.send(f"bye from {user.first_name}")
    replies = await tg.wait_for_replies(user, 6)
    echoed = [r.get("reply_to_message", {}).get("message_id") for r in replies]
    assert echoed == [None, one["message_id"], two["message_id"], None, None, bye["message_id"]]
    return replies
