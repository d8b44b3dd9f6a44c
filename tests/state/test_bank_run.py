"""The bank bot of ``examples/bank_bot.py`` under ``tgrunner run --workers 2`` against
FakeTelegram: 12 users send 240 random transfers at once, each awaiting a Bot API call
between its read and its write. The total is kept exactly and no balance goes negative, with
the example's ordering keys and without them (the transaction alone), on the default store
(SQLite in the data dir) and on Redis. The naive version (read, await, write) loses or
creates money in the same harness."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from state_backends import REDIS_DB, clean

from processes import end_started_bots, start_bot, until
from services import need_service
from tgrunner.state import open_store
from tgrunner.testing import FakeTelegram

ROOT = Path(__file__).parents[2]
BOTS = ROOT / "tests" / "bots"
EXAMPLES = ROOT / "examples"
USERS = 12
TRANSFERS = 240
START = 100

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


async def run_bank(
    tg: FakeTelegram, target: str, cwd: Path, *args: str, seed: int = 7
) -> list[Any]:
    """Open 12 accounts, send 240 random transfers at once, wait for every answer, stop the
    bot cleanly; returns the users."""
    users = [tg.user(f"c{i}", username=f"c{i}") for i in range(USERS)]
    bot = await start_bot(tg, target, "--workers", "2", *args, cwd=cwd, timeout=90)
    for user in users:
        user.command("balance")
    await until(tg, bot, lambda: all(tg.replies(u) for u in users))
    rng = random.Random(seed)
    sent: Counter[int] = Counter()
    for _ in range(TRANSFERS):
        src, dst = rng.sample(users, 2)
        src.command("transfer", f"{rng.randint(1, 60)} @{dst.username}")
        sent[src.id] += 1
    await until(tg, bot, lambda: all(len(tg.replies(u)) >= 1 + sent[u.id] for u in users), 90)
    await bot.stop()
    for user in users:
        texts = [m["text"] for m in tg.replies(user)[1:]]
        assert len(texts) == sent[user.id], texts
        assert all(t.startswith(("Sent ", "You have ")) for t in texts), texts
    return users


async def balances(url: str, users: list[Any]) -> list[int]:
    async with open_store(url) as store:
        return [await store.get(f"bank:account:{u.id}") for u in users]


def default_store(tg: FakeTelegram, data_dir: Path) -> str:
    return f"sqlite:///{data_dir / tg.token.partition(':')[0] / 'state.sqlite'}"


@pytest.mark.timeout(240)
async def test_the_bank_example_keeps_the_total(tg: FakeTelegram, data_dir: Path) -> None:
    users = await run_bank(tg, "bank_bot:router", EXAMPLES)
    found = await balances(default_store(tg, data_dir), users)
    assert sum(found) == USERS * START, found
    assert min(found) >= 0, found
    assert len(set(found)) > 1, "no transfer went through"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.services)])
@pytest.mark.timeout(240)
async def test_the_transaction_alone_keeps_the_total(
    tg: FakeTelegram, data_dir: Path, backend: str
) -> None:
    args: tuple[str, ...] = ()
    url = default_store(tg, data_dir)
    if backend == "redis":
        need_service("redis")
        url = f"redis://127.0.0.1:6379/{REDIS_DB}?prefix=tgrtest:bank{uuid.uuid4().hex[:8]}:"
        args = ("--state", url)
    try:
        users = await run_bank(tg, "bank_unkeyed:router", BOTS, *args)
        found = await balances(url, users)
    finally:
        if backend == "redis":
            await clean(url)
    assert sum(found) == USERS * START, found
    assert min(found) >= 0, found


@pytest.mark.timeout(240)
async def test_the_naive_bank_loses_or_creates_money(tg: FakeTelegram, data_dir: Path) -> None:
    users = await run_bank(tg, "bank_naive:router", BOTS)
    found = await balances(default_store(tg, data_dir), users)
    assert sum(found) != USERS * START or min(found) < 0, found
