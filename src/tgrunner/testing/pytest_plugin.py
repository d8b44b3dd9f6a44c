"""tgrunner's pytest plugin: the ``fake_telegram`` fixture, a fresh FakeTelegram per test.

Installed with tgrunner (the ``pytest11`` entry point ``tgrunner``), so any project that has
tgrunner installed gets the fixture without configuration; ``-p no:tgrunner`` turns it off.

::

    from tgrunner.testing import running

    def test_start(fake_telegram):                       # a sync test: no plugin needed
        alice = fake_telegram.user("Alice")
        with running("mybot:router", fake_telegram):
            alice.send("/start")
            [reply] = fake_telegram.wait_for_replies_sync(alice, 1)

    async def test_start_async(fake_telegram):           # needs pytest-asyncio (or anyio)
        alice = fake_telegram.user("Alice")
        async with running("mybot:router", fake_telegram):
            alice.send("/start")
            [reply] = await fake_telegram.wait_for_replies(alice, 1)

The FakeTelegram serves from its own thread (thread mode), so one fixture serves both kinds of
test, whatever event loop (and loop scope) an async test runs on: its waits are awaitable from
any loop, and blocking ``*_sync`` twins serve sync tests. The fixture is sync, so it needs no
async plugin; ``async def`` tests need one to run at all (pytest-asyncio, or anyio on asyncio).

Loading the plugin imports tgrunner and FakeTelegram, never aiogram or python-telegram-bot
(those are imported only when a test runs such a bot).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tgrunner.testing.fake.server import FakeTelegram

__all__ = ["fake_telegram"]


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """A FakeTelegram serving on a free loopback port from its own thread, for one test.

    Each test gets a new one (new chats, an empty record, the same token: ``seed=0``). Run the
    bot against it with :func:`tgrunner.testing.running`.
    """
    with FakeTelegram().in_thread() as tg:
        yield tg
