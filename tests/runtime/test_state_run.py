"""``tgrunner run --state`` in its own process against FakeTelegram: ``ctx.user_data`` and
``ctx.chat_data`` keep every increment when one user writes from two chats handled by two
worker processes at once; the default store is SQLite in the data dir, made at its first
use; an unreachable store stops the start with one line and exit 2; ``/readyz`` reports
``state``."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from processes import end_started_bots, start_bot
from tgrunner.executors.processes.routing import slot_for
from tgrunner.state import open_store
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[1] / "bots"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_on_the_other_worker(tg: FakeTelegram, user: Any, index: int) -> Any:
    """A group with ``user`` whose chat goes to the other worker than the user's own chat."""
    mine = slot_for(f"c:{user.chat.id}", 2)
    for attempt in range(50):
        group = tg.group(f"g{index}-{attempt}", members=[user])
        if slot_for(f"c:{group.id}", 2) != mine:
            return group
    raise AssertionError("no group id hashed to the other worker")


@pytest.mark.timeout(90)
async def test_one_user_in_two_chats_on_two_workers_loses_no_increment(
    tg: FakeTelegram, data_dir: Path
) -> None:
    users = [tg.user(f"u{i}", username=f"u{i}") for i in range(4)]
    groups = [_group_on_the_other_worker(tg, u, i) for i, u in enumerate(users)]
    per_chat = 30
    for n in range(per_chat):  # each user writes in both chats, interleaved
        for user, group in zip(users, groups, strict=True):
            user.send(f"p{n}")
            user.send(f"g{n}", chat=group)
    bot = await start_bot(tg, "state_counter:router", "--workers", "2", cwd=BOTS)
    await tg.wait_for(
        lambda: (
            all(len(tg.replies(u)) >= per_chat for u in users)
            and all(len(tg.replies(g)) >= per_chat for g in groups)
        ),
        timeout=60,
    )
    for user in users:
        user.command("count")
    await tg.wait_for(lambda: all(len(tg.replies(u)) > per_chat for u in users), timeout=20)
    await bot.stop()
    for user, group in zip(users, groups, strict=True):
        assert tg.replies(user)[-1]["text"] == f"count {2 * per_chat}"
        # Each chat counted each of its own messages once, in order.
        for chat in (user.chat, group):
            counts = [int(m["text"].split()[3]) for m in tg.replies(chat)[:per_chat]]
            assert counts == list(range(1, per_chat + 1)), counts
    # The default store: SQLite in the data dir, beside the journal.
    path = data_dir / tg.token.partition(":")[0] / "state.sqlite"
    async with open_store(f"sqlite:///{path}") as store:
        assert await store.get(f"user:{users[0].id}") == {"n": 2 * per_chat}
        assert await store.get(f"chat:{groups[0].id}") == {"n": per_chat}


@pytest.mark.timeout(60)
async def test_a_bot_that_keeps_no_state_leaves_no_state_file(
    tg: FakeTelegram, data_dir: Path
) -> None:
    user = tg.user()
    bot = await start_bot(tg, "echo_bot:router", cwd=BOTS)
    user.send("hi")
    await tg.wait_for_replies(user, 1, timeout=20)
    await bot.stop()
    folder = data_dir / tg.token.partition(":")[0]
    assert (folder / "journal.sqlite3").exists()
    assert not list(folder.glob("state.sqlite*"))


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.timeout(60)
async def test_an_unreachable_state_store_stops_the_start_with_one_line(
    tg: FakeTelegram, workers: str
) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", "state_counter:router",
        "--api-url", tg.api_url, "--token", tg.token, "--state", url, "--workers", workers,
        cwd=BOTS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(40):
        out, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 2, text
    assert out == b""
    assert len(text.strip().splitlines()) == 1, text
    assert text.startswith(f"tgrunner: cannot open the state store {url}: "), text
    assert text.rstrip().endswith("Start it, or give another --state URL."), text
    assert not tg.calls("getUpdates"), "it polled before its store was checked"


@pytest.mark.timeout(60)
async def test_readyz_reports_the_state_store(tg: FakeTelegram, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot-state.db'}"
    bot = await start_bot(
        tg, "state_counter:router", "--state", url, "--metrics", "127.0.0.1:0", cwd=BOTS
    )
    log = await bot.wait_for_line("metrics on ")
    address = log.split("metrics on ")[1].split("/metrics")[0]
    async with aiohttp.ClientSession() as session, session.get(f"{address}/readyz") as answer:
        body = await answer.json()
    assert answer.status == 200, body
    assert body["checks"]["state"] is True, body
    assert (tmp_path / "bot-state.db").exists(), "a --state store is opened at start"
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
