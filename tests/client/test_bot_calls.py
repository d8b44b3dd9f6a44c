"""The native Bot API client against FakeTelegram over real HTTP: results of calls by name and
of the typed helpers, and the caller's arguments left as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tgrunner.client.bot import Bot
from tgrunner.testing import FakeTelegram


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        yield client


async def test_get_me_and_any_method_by_name(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert me["id"] == bot.id and me["is_bot"] is True
    commands = await bot.call("getMyCommands")
    assert isinstance(commands, list)
    assert await bot.call("setMyCommands", commands=[{"command": "a", "description": "b"}])


async def test_send_message_with_reply_and_keyboard(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    asked = alice.send("hi")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
    sent = await bot.send_message(
        alice.chat.id,
        "hello",
        reply_parameters={"message_id": asked["message_id"]},
        reply_markup=markup,
    )
    assert sent["text"] == "hello"
    assert sent["reply_to_message"]["message_id"] == asked["message_id"]
    assert sent["reply_markup"] == markup
    assert tg.replies(alice) == [sent]


async def test_call_leaves_the_callers_parameters_as_they_were(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
    params = {"chat_id": alice.chat.id, "text": "hi", "reply_markup": markup, "x": None}
    await bot.request("sendMessage", params)
    assert params == {"chat_id": alice.chat.id, "text": "hi", "reply_markup": markup, "x": None}
