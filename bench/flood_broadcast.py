"""The broadcast part of the flood benchmark (:mod:`bench.flood`): ``bot.broadcast()`` to many
chats, the bot SIGKILLed in the middle and started again on the same data dir.

FakeTelegram enforces Telegram's bulk limit here too (30 messages/s over all chats, a burst of
30). The bot (:mod:`bench.bots.flood_broadcast`) starts the broadcast when the control chat
says ``/broadcast``; once half the chats have it, the bot's process group is SIGKILLed and the
bot started again at once. Its outbox must resume the broadcast by itself. Measured from the
fake's record: chats that got it once, never (lost) or more than once (duplicates: at most what
was in flight at the kill), 429s, and the rate before the kill, after the restart, and overall.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.bots.flood_broadcast import CONTROL_CHAT, TEXT
from bench.flood_parts import percentile, push, register
from tgrunner.testing import FakeTelegram

__all__ = ["BROADCAST_CHAT", "BULK_RATE", "BroadcastPlan", "Tally", "broadcast", "missing"]

BROADCAST_CHAT = 12_000_000
BULK_RATE = 30.0
"""Messages per second the fake allows over all chats in this part (Telegram's bulk limit),
with a burst of as many."""


@dataclass(frozen=True, slots=True)
class BroadcastPlan:
    """``chats`` chats; the bot is SIGKILLed once ``kill_at`` of them have the message; the
    wait ends when all have it, after ``quiet`` s without a send, or at ``timeout``."""

    chats: int = 10_000
    kill_at: float = 0.5
    quiet: float = 20.0
    timeout: float = 0.0  # 0: twice the time the bulk rate needs, plus 120 s

    @property
    def deadline_seconds(self) -> float:
        return self.timeout or self.chats / BULK_RATE * 2 + 120


def missing() -> str | None:
    """Why the broadcast cannot run with this tgrunner (None: it can)."""
    if importlib.util.find_spec("tgrunner.flood.broadcast") is None:
        return (
            "tgrunner.flood.broadcast is missing: bot.broadcast() (issue 13, FLOOD.md) is not "
            "in this build yet"
        )
    return None


class Tally:
    """The broadcast's ``sendMessage`` calls in the fake's record, per chat: deliveries
    (status 200, with their record times), 429s and other errors."""

    def __init__(self, tg: FakeTelegram, chats: range) -> None:
        self.tg, self.chats = tg, chats
        self.count: dict[int, int] = {}
        self.times: list[float] = []  # record times of first deliveries, in order
        self.floods = 0
        self.errors = 0
        self._seen = 0

    def scan(self) -> int:
        """Chats that have the message so far."""
        records = self.tg.requests
        end = len(records)
        for i in range(self._seen, end):
            r = records[i]
            chat_id = r.params.get("chat_id")
            if r.method != "sendMessage" or not isinstance(chat_id, int):
                continue
            if chat_id not in self.chats:
                continue
            if r.status == 429:
                self.floods += 1
            elif r.status != 200 or r.params.get("text") != TEXT:
                self.errors += 1
            else:
                n = self.count.get(chat_id, 0)
                self.count[chat_id] = n + 1
                if n == 0:
                    self.times.append(r.time)
        self._seen = end
        return len(self.count)


def _rate(count: int, start: float | None, end: float | None) -> float | None:
    if start is None or end is None or end <= start:
        return None
    return round(count / (end - start), 2)


def _timeline(times: list[float], start: float) -> list[int]:
    """Chats reached by the end of each second from ``start``."""
    if not times:
        return []
    out, i = [], 0
    for second in range(1, int(times[-1] - start) + 2):
        while i < len(times) and times[i] < start + second:
            i += 1
        out.append(i)
    return out


async def _until(tg: FakeTelegram, tally: Tally, want: int, timeout: float) -> bool:
    try:
        await tg.wait_for(lambda: tally.scan() >= want, timeout=max(timeout, 0.01))
    except TimeoutError:
        return False
    return True


async def broadcast(
    tg: FakeTelegram,
    plan: BroadcastPlan,
    kill: Callable[[], Awaitable[None]],
    restart: Callable[[], Awaitable[float]],
) -> dict[str, Any]:
    """Run the broadcast with the bot already polling ``tg``; ``kill()`` SIGKILLs it,
    ``restart()`` starts it again (seconds it took). The measures; RuntimeError when the bot
    does not start the broadcast."""
    chats = range(BROADCAST_CHAT, BROADCAST_CHAT + plan.chats)
    for chat_id in chats:
        register(tg, chat_id)
    control = register(tg, CONTROL_CHAT)
    tally = Tally(tg, chats)
    begun = time.monotonic()
    deadline = begun + plan.deadline_seconds
    push(tg, control, "/broadcast")
    try:
        [answer] = await tg.wait_for_replies(CONTROL_CHAT, 1, timeout=60)
    except TimeoutError:
        raise RuntimeError("the bot did not answer /broadcast within 60 s") from None
    started = time.time()
    want = max(1, round(plan.chats * plan.kill_at))
    reached = await _until(tg, tally, want, deadline - time.monotonic())
    killed_at = time.time()
    await kill()
    before = tally.scan()
    last_second = sum(1 for t in tally.times if t >= killed_at - 1.0)
    restart_s = await restart()
    # Until every chat has it, or no chat got it for plan.quiet s, or the deadline.
    while tally.scan() < plan.chats:
        left = deadline - time.monotonic()
        if left <= 0 or not await _until(tg, tally, tally.scan() + 1, min(plan.quiet, left)):
            break
    after_times = [t for t in tally.times if t > killed_at]
    first, last = (tally.times[0], tally.times[-1]) if tally.times else (None, None)
    gaps = sorted(b - a for a, b in zip(tally.times, tally.times[1:], strict=False))
    return {
        "chats": plan.chats,
        "answer": answer.get("text"),
        "delivered": len(tally.count),
        "lost": plan.chats - len(tally.count),
        "duplicates": sum(n - 1 for n in tally.count.values()),
        "floods": tally.floods,
        "errors": tally.errors,
        "killed": reached,
        "before_kill": before,
        "answered_last_second": last_second,
        "restart_s": round(restart_s, 2),
        "downtime_s": round(after_times[0] - killed_at, 2) if after_times else None,
        "rate_before": _rate(before, first, killed_at),
        "rate_after": _rate(len(after_times), after_times[0] if after_times else None, last),
        "rate_overall": _rate(len(tally.count), first, last),
        "gap_p99_ms": round((percentile(gaps, 0.99) or 0) * 1000, 1) if gaps else None,
        "timeline": _timeline(tally.times, started),
        "killed_at_s": round(killed_at - started, 2),
        "ended": "all delivered" if len(tally.count) >= plan.chats else "stopped waiting",
    }
