"""``ctx.bot.broadcast(...)`` under ``tgrunner run``: the outbox is the bot's data dir's, and a
broadcast cut by a SIGKILL is resumed by the next start, by itself, in the bot's process or
in its worker processes; every chat gets the message, duplicates at most the window."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from processes import end_started_bots, start_bot, until
from tgrunner.flood.broadcast import DEFAULT_WINDOW
from tgrunner.testing import FakeTelegram

pytestmark = pytest.mark.slow

BOT = textwrap.dedent(
    """
    import os
    from tgrunner.frontends.native.router import Context, Router

    router = Router()

    @router.message()
    async def go(ctx: Context) -> None:
        ids = [int(x) for x in os.environ["BROADCAST_TO"].split(",")]
        handle = await ctx.bot.broadcast(ids, text="news")
        await ctx.answer(f"started {handle.id}")
    """
)


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(x) for x in listing.read().split()]


async def gone(pid: int) -> None:
    """Return once process ``pid`` has ended (its pidfd turns readable)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    ended = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, ended.set)
    try:
        await asyncio.wait_for(ended.wait(), 15)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def news(tg: FakeTelegram) -> Counter[int]:
    return Counter(
        call.params["chat_id"]
        for call in tg.calls("sendMessage")
        if call.status == 200 and call.params.get("text") == "news"
    )


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.timeout(90)
async def test_a_broadcast_cut_by_sigkill_is_resumed_by_the_next_start(
    tg: FakeTelegram, tmp_path: Path, workers: int
) -> None:
    (tmp_path / "bcast_bot.py").write_text(BOT)
    users = [tg.user(f"U{i}") for i in range(120)]
    ids = [u.chat.id for u in users]
    admin = tg.user("Admin")
    env = {"BROADCAST_TO": ",".join(map(str, ids))}
    args = ("--workers", str(workers), "--flood-rate", "bulk=60/s:10")
    try:
        bot = await start_bot(tg, "bcast_bot:router", *args, cwd=tmp_path, env=env)
        admin.send("/go")
        await until(tg, bot, lambda: sum(news(tg).values()) >= 40, timeout=30)
        workers_of = children(bot.proc.pid)
        bot.proc.send_signal(signal.SIGKILL)
        await bot.proc.wait()
        for pid in workers_of:  # they see their supervisor's end and exit by themselves
            await gone(pid)
        cut = sum(news(tg).values())
        assert cut < len(ids), "the kill came after the end: nothing to resume"
        again = await start_bot(tg, "bcast_bot:router", *args, cwd=tmp_path, env=env)
        await until(tg, again, lambda: set(news(tg)) >= set(ids), timeout=40)
        await asyncio.sleep(0.5)  # what was in flight at the end lands too
        sent = news(tg)
        assert set(sent) == set(ids)
        assert sum(sent.values()) - len(ids) <= DEFAULT_WINDOW
        outbox = Path(os.environ["TGRUNNER_DATA_DIR"]) / tg.token.partition(":")[0]
        assert (outbox / "broadcasts.sqlite").exists()
        assert "broadcasts resumed" in again.log
        assert [m["text"] for m in tg.replies(admin)] == ["started 1"]
    finally:
        await end_started_bots()
