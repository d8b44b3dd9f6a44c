"""SIGKILL chaos for the process tests of every front-end: kill a bot under load at random
moments, restart it each time, and check that nothing was lost, order held, and duplicates
stayed within what the contract allows.

The bound on duplicates, per kill:
- with the journal: the updates that were running (at most ``--concurrency``), plus those
  whose finish marks were not yet on disk, which is at most the replies of the last 100 ms;
- with strict offsets: the window Telegram redelivers, at most 100 updates.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from processes import MODES, start_bot
from replies import Tally, replied, send_load, tally
from tgrunner.testing import FakeTelegram

# What a test bot runs with, so the journal's in-flight bound is tight.
CONCURRENCY = 20
STRICT_WINDOW = 100
MARK_WINDOW = 0.1  # finish marks reach disk within this many seconds


@dataclass
class ChaosResult:
    tally: Tally
    bound: int  # duplicates allowed by the contract over all kills
    kills: int


def _recent_replies(tg: FakeTelegram, now: float) -> int:
    return sum(
        1
        for r in tg.requests
        if r.method == "sendMessage" and r.ok and now - MARK_WINDOW <= r.time <= now
    )


async def kill_and_restart(
    tg: FakeTelegram,
    target: str,
    mode: str,
    *,
    cwd: Path,
    kills: int = 5,
    chats: int = 30,
    per_chat: int = 40,
    seed: int | None = None,
    env: dict[str, str] | None = None,
) -> ChaosResult:
    """Send ``chats * per_chat`` messages, kill the bot ``kills`` times at random points of
    the load (restarting it each time), then let it finish and stop it cleanly."""
    rng = random.Random(seed)
    sent = send_load(tg, chats=chats, per_chat=per_chat)
    total = sum(len(v) for v in sent.values())
    extra = (*MODES[mode], "--concurrency", str(CONCURRENCY))
    # Kill points spread over the load, each drawn at random within its own stretch.
    stretch = total / (kills + 1)
    points = sorted(int(stretch * (i + rng.uniform(0.3, 1.0))) for i in range(kills))
    bound = 0
    bot = await start_bot(tg, target, *extra, cwd=cwd, env=env)
    for point in points:
        await tg.wait_for(lambda point=point: replied(tg) >= point, timeout=60)
        bot.kill()
        killed_at = time.time()
        await bot.finish()
        if mode == "journal":
            bound += CONCURRENCY + _recent_replies(tg, killed_at)
        else:
            bound += STRICT_WINDOW
        bot = await start_bot(tg, target, *extra, cwd=cwd, env=env)
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=90)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err
    return ChaosResult(tally(sent, tg.requests), bound, kills)


async def stop_and_restart(
    tg: FakeTelegram,
    target: str,
    mode: str,
    *,
    cwd: Path,
    chats: int = 40,
    per_chat: int = 20,
    env: dict[str, str] | None = None,
    between: Callable[[int], Awaitable[None]] | None = None,
) -> Tally:
    """SIGTERM a bot under load, then restart it to finish the rest; return the tally.

    Each stop must exit 0 without a traceback, and the first must come before every message
    was answered. ``between(replied)`` runs after the first stop (checks of what it saved).
    """
    sent = send_load(tg, chats=chats, per_chat=per_chat)
    total = sum(len(v) for v in sent.values())
    for run in range(2):
        bot = await start_bot(tg, target, *MODES[mode], cwd=cwd, env=env)
        if run == 0:
            await tg.wait_for(lambda: replied(tg) >= total // 4, timeout=30)
        else:
            await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=60)
        bot.send_signal(signal.SIGTERM)
        code, err = await bot.finish()
        assert code == 0, err
        assert "Traceback" not in err
        if run == 0:
            first = replied(tg)
            assert first < total, "the stop came too late to test anything"
            if between is not None:
                await between(first)
    return tally(sent, tg.requests)
