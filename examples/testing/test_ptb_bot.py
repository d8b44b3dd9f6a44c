"""The PTB bot, tested with an async test (pytest-asyncio) on an Application built for it."""

import pytest
from ptb_counter import build

from tgrunner.testing import FakeTelegram, running


@pytest.mark.asyncio
async def test_each_user_is_counted_apart(fake_telegram: FakeTelegram) -> None:
    alice, bob = fake_telegram.user("Alice"), fake_telegram.user("Bob")
    async with running(build(fake_telegram.token), fake_telegram):
        alice.send("one")
        alice.send("two")
        bob.send("three")
        alice_replies = await fake_telegram.wait_for_replies(alice, 2)
        [bob_reply] = await fake_telegram.wait_for_replies(bob, 1)
    assert [r["text"] for r in alice_replies] == ["Message number 1", "Message number 2"]
    assert bob_reply["text"] == "Message number 1"
