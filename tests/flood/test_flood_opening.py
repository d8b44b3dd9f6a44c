"""The issue's opening bug: a handler sending five messages into one chat under Telegram's
per-chat limit lost the last ones to RetryAfter. With the default flood control (reactive),
all five arrive, in order, and the handler never sees the 429."""

from __future__ import annotations

from typing import Any

import pytest

from tgrunner.testing import FakeTelegram, FloodLimits, running


async def five_messages(update: dict[str, Any], bot: Any) -> None:
    chat = update["message"]["chat"]["id"]
    for n in range(1, 6):
        await bot.send_message(chat, f"part {n}")


@pytest.mark.timeout(20)
async def test_five_messages_into_one_chat_all_arrive_in_order(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1)
    alice = tg.user("Alice")
    async with running(five_messages, tg) as runner:
        alice.send("go")
        replies = await tg.wait_for_replies(alice, 5, timeout=15)
    assert [r["text"] for r in replies] == [f"part {n}" for n in range(1, 6)]
    assert runner.stats.errors == 0
    sends = tg.calls("sendMessage")
    assert any(r.status == 429 for r in sends), "the limit was never hit: the test proves nothing"
    assert [r.params["text"] for r in sends if r.ok] == [f"part {n}" for n in range(1, 6)]
