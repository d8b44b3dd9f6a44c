"""The bridges under ``tgrunner run --workers 2`` against FakeTelegram, with the bot killed
by SIGKILL in the middle of its conversations and started again:

- an unchanged PTB bot with a persistent ``ConversationHandler`` and ``user_data`` on
  ``TgrunnerPersistence`` (``tests/bots/ptb_form_state.py``): 16 users fill in a 3-step form,
  the bot is killed after the second question, and after the restart every form completes
  with the answers given before the kill;
- the aiogram bank of ``examples/bank_aiogram.py`` (FSM on ``TgrunnerStorage``): 12 users ask
  for a transfer and get "Send N to @x? yes/no", the bot is killed, and after the restart
  their "yes" moves the money, once, and the total is kept.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from processes import BotProcess, end_started_bots, journaled, start_bot
from tgrunner.state import open_store
from tgrunner.testing import FakeTelegram

ROOT = Path(__file__).parents[2]
BOTS = ROOT / "tests" / "bots"
EXAMPLES = ROOT / "examples"
READY = re.compile(r"worker \d+ \(pid (\d+)\) ready in")
ARGS = ("--workers", "2", "--poll-timeout", "1")

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


async def _gone(pid: int) -> None:
    """Return once process ``pid`` has exited (woken by its pidfd, not by polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(fd, lambda: exited.done() or exited.set_result(None))
    try:
        async with asyncio.timeout(10):
            await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def kill_all(tg: FakeTelegram, bot: BotProcess) -> None:
    """Once every update is finished in the journal (checked at each of the bot's 1 s
    polls), SIGKILL the bot (the supervisor, by its pid), then wait until its worker
    processes, which see their pipe close, are gone too. The kill falls between two steps of
    the conversations, not inside an update, which would be handled again at the restart."""
    await tg.wait_for(lambda: journaled(tg) == 0, timeout=10)
    workers = [int(pid) for pid in READY.findall(bot.log)]
    assert len(workers) == 2, bot.log
    bot.proc.send_signal(signal.SIGKILL)
    code, _ = await bot.finish()
    assert code == -signal.SIGKILL
    for pid in workers:
        await _gone(pid)


def _texts(tg: FakeTelegram, user: Any) -> list[str]:
    return [m["text"] for m in tg.replies(user)]


@pytest.mark.timeout(120)
async def test_a_ptb_conversation_survives_sigkill_and_goes_on_in_any_worker(
    tg: FakeTelegram,
) -> None:
    users = [tg.user(f"form{i}") for i in range(16)]
    bot = await start_bot(tg, "ptb_form_state:application", *ARGS, cwd=BOTS)
    await bot.wait_for_line("2 worker processes ready")
    for user in users:
        user.command("start")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 1 for u in users), timeout=30)
    for i, user in enumerate(users):
        user.send(f"name{i}")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 2 for u in users), timeout=30)
    await kill_all(tg, bot)
    assert all(_texts(tg, u) == ["name?", "age?"] for u in users)
    # Restarted: the conversations are where they were, with the names given before.
    bot = await start_bot(tg, "ptb_form_state:application", *ARGS, cwd=BOTS)
    for step in ("age", "city"):
        for i, user in enumerate(users):
            user.send(f"{step}{i}")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 4 for u in users), timeout=45)
    await bot.stop()
    pids = set()
    for i, user in enumerate(users):
        texts = _texts(tg, user)
        assert texts[:3] == ["name?", "age?", "city?"], texts
        found = re.fullmatch(rf"done name{i} age{i} city{i} in (\d+)", texts[3])
        assert found, texts
        pids.add(found[1])
    assert len(pids) == 2, "both workers of the second run finished forms"


@pytest.mark.timeout(120)
async def test_the_aiogram_bank_confirms_after_sigkill_and_moves_money_once(
    tg: FakeTelegram, data_dir: Path
) -> None:
    users = [tg.user(f"b{i}", username=f"b{i}") for i in range(12)]
    bot = await start_bot(tg, "bank_aiogram:dp", *ARGS, cwd=EXAMPLES)
    await bot.wait_for_line("2 worker processes ready")
    for user in users:
        user.command("balance")
    await tg.wait_for(lambda: all(tg.replies(u) for u in users), timeout=30)
    rng = random.Random(5)
    asked = {}
    for user in users:
        dst = rng.choice([u for u in users if u is not user])
        asked[user.id] = (rng.randint(1, 60), dst)
        user.command("transfer", f"{asked[user.id][0]} @{dst.username}")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 2 for u in users), timeout=30)
    for user in users:
        amount, dst = asked[user.id]
        assert _texts(tg, user)[1] == f"Send {amount} to @{dst.username}? yes/no"
    await kill_all(tg, bot)
    bot = await start_bot(tg, "bank_aiogram:dp", *ARGS, cwd=EXAMPLES)
    for user in users:
        user.send("yes")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 3 for u in users), timeout=30)
    for user in users:  # a second "yes" finds nothing to confirm: no transfer happens twice
        user.send("yes")
        user.command("balance")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 4 for u in users), timeout=30)
    await bot.stop()
    sent = 0
    for user in users:
        texts = _texts(tg, user)
        amount, dst = asked[user.id]
        assert texts[2].startswith((f"Sent {amount} to @{dst.username}. ", "You have ")), texts
        sent += texts[2].startswith("Sent ")
        assert texts[3].startswith("You have "), texts  # the FSM was left: a plain balance
    assert sent > 0
    path = data_dir / tg.token.partition(":")[0] / "state.sqlite"
    bot_id = tg.token.partition(":")[0]
    async with open_store(f"sqlite:///{path}") as store:
        found = [await store.get(f"bank:account:{u.id}") for u in users]
        for user in users:  # the FSM records were cleared with the transfers
            record = f"aiogram:fsm:{bot_id}:{user.chat.id}:{user.id}:default"
            assert await store.get(f"{record}:state") is None
            assert await store.get(f"{record}:data") is None
    assert sum(found) == 100 * len(users), found
    assert min(found) >= 0, found
    expected = {u.id: 100 for u in users}
    for user in users:
        amount, dst = asked[user.id]
        if _texts(tg, user)[2].startswith("Sent "):
            expected[user.id] -= amount
            expected[dst.id] += amount
    assert found == [expected[u.id] for u in users]
