"""Flood control in ``tgrunner run`` processes: with ``--workers 2`` each worker builds its own
from the options it is given, so every chat's five replies arrive in order under Telegram's
per-chat limit; ``--flood off`` reaches the workers too, and the 429s reach the handlers."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from processes import end_started_bots, start_bot
from tgrunner.testing import FakeTelegram, FloodLimits

BOTS = Path(__file__).parents[1] / "bots"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


@pytest.mark.timeout(60)
async def test_each_worker_paces_its_chats(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1)
    users = [tg.user(f"U{i}") for i in range(6)]
    bot = await start_bot(tg, "flood_bot:router", "--workers", "2", cwd=BOTS)
    for i, user in enumerate(users):
        user.send(f"m{i}")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 5 for u in users), timeout=30)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err, err
    for i, user in enumerate(users):
        assert [m["text"] for m in tg.replies(user)] == [f"m{i} {n}" for n in range(1, 6)]
    assert any(r.status == 429 for r in tg.calls("sendMessage")), "the limit was never hit"


@pytest.mark.timeout(60)
async def test_flood_off_reaches_the_workers(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1, private_burst=1)
    alice = tg.user("Alice")
    bot = await start_bot(tg, "flood_bot:router", "--workers", "2", "--flood", "off", cwd=BOTS)
    alice.send("hi")
    await tg.wait_for_call("sendMessage", where=lambda r: r.status == 429, timeout=15)
    await bot.wait_for_line("RetryAfter", timeout=15)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert [m["text"] for m in tg.replies(alice)] == ["hi 1"]
