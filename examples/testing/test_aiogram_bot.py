"""The aiogram bot, tested with async tests (pytest-asyncio). Both tests use the same
module-level Dispatcher: running() empties its FSM storage before each run."""

import pytest
from aiogram_form import dp

from tgrunner.testing import FakeTelegram, running


@pytest.mark.asyncio
async def test_the_form_asks_then_greets(fake_telegram: FakeTelegram) -> None:
    alice = fake_telegram.user("Alice")
    async with running(dp, fake_telegram):
        alice.send("/form")
        [question] = await fake_telegram.wait_for_replies(alice, 1)
        alice.send("Alice")
        [_, greeting] = await fake_telegram.wait_for_replies(alice, 2)
        alice.send("/form")  # left open: the next test must not see it
        await fake_telegram.wait_for_replies(alice, 3)
    assert question["text"] == "What is your name?"
    assert greeting["text"] == "Nice to meet you, Alice!"


@pytest.mark.asyncio
async def test_no_form_is_open_at_the_start(fake_telegram: FakeTelegram) -> None:
    alice = fake_telegram.user("Alice")
    async with running(dp, fake_telegram):
        alice.send("Alice")
        [reply] = await fake_telegram.wait_for_replies(alice, 1)
    assert reply["text"] == "Alice"  # echoed: no form was waiting for a name
