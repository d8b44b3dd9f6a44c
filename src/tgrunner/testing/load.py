"""A load driver on FakeTelegram: many chats send numbered messages to an echo bot, and the
driver checks every reply for order, loss and duplicates and times it.

Used by ``tgrunner demo`` and by ``bench/``. The bot under load can be anything that echoes a
message's text into its chat (a tgrunner bot, aiogram, PTB, grammY). Each message's text is a
unique number, so a reply names the message it answers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tgrunner.testing.fake.faults import Faults
from tgrunner.testing.fake.server import FakeTelegram

__all__ = ["LoadPlan", "LoadReport", "run_load", "send_methods_latency"]

# How often a paced run pushes the updates that have come due.
_TICK = 0.002


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What to offer the bot.

    - ``chats``: simulated private chats, default 1000.
    - ``updates``: messages in all, spread over the chats at random, default 20,000.
    - ``rate``: updates per second offered; 0 (default) queues them all at once (a backlog).
    - ``latency_ms``: API latency added to every method but ``getUpdates``, default 0.
    - ``timeout``: seconds to wait for all replies before reporting what came, default 300.
    - ``seed``: the draw of chats, default 0.
    - ``spread``: how messages pick their chat: ``"random"`` (default; a chat may get two
      messages close together, and the second then waits for the first, as order demands)
      or ``"even"`` (round robin: every chat gets one message in turn).
    """

    chats: int = 1000
    updates: int = 20_000
    rate: float = 0.0
    latency_ms: float = 0.0
    timeout: float = 300.0
    seed: int = 0
    spread: str = "random"

    def __post_init__(self) -> None:
        if self.spread not in ("random", "even"):
            raise ValueError(f"spread is 'random' or 'even', not {self.spread!r}")
        if self.chats < 1 or self.updates < 1:
            raise ValueError("a load needs at least one chat and one update")
        if self.rate < 0 or self.latency_ms < 0 or self.timeout <= 0:
            raise ValueError("rate and latency_ms must be ≥ 0, timeout > 0")


@dataclass(slots=True)
class LoadReport:
    """What came back: counts, throughput (updates/s), latency percentiles (ms), and the
    contract checks: ``violations`` (a reply after a reply to a later message of its chat),
    ``lost`` (no reply), ``duplicates`` (extra replies)."""

    updates: int
    replied: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    violations: int
    lost: int
    duplicates: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def send_methods_latency(latency_ms: float) -> Faults | None:
    """Faults adding ``latency_ms`` to every method except ``getUpdates`` (None for 0)."""
    if latency_ms <= 0:
        return None
    seconds = latency_ms / 1000

    def latency(method: str) -> float:
        return 0.0 if method.lower() == "getupdates" else seconds

    return Faults(latency=latency)


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class _Tracker:
    """Matches the bot's sendMessage calls to the messages sent, incrementally."""

    def __init__(self, tg: FakeTelegram, total: int) -> None:
        self.tg = tg
        self.total = total
        self.sent_at: dict[str, tuple[int, float]] = {}  # text -> (chat id, monotonic time)
        self.order: dict[int, int] = {}  # chat id -> highest sequence answered
        self.seq: dict[str, int] = {}  # text -> position in its chat
        self.first: dict[str, float] = {}  # text -> latency in seconds
        self.duplicates = 0
        self.violations = 0
        self.last_reply = 0.0
        self._seen = 0

    def scan(self) -> bool:
        records = self.tg.requests
        end = len(records)
        for i in range(self._seen, end):
            r = records[i]
            if r.method != "sendMessage" or r.status != 200:
                continue
            text = str(r.params.get("text", ""))
            sent = self.sent_at.get(text)
            if sent is None or int(r.params.get("chat_id", 0)) != sent[0]:
                continue
            now = time.monotonic()
            if text in self.first:
                self.duplicates += 1
                continue
            self.first[text] = now - sent[1]
            self.last_reply = now
            seq = self.seq[text]
            if seq < self.order.get(sent[0], -1):
                self.violations += 1
            else:
                self.order[sent[0]] = seq
        self._seen = end
        return len(self.first) >= self.total


async def run_load(
    tg: FakeTelegram,
    plan: LoadPlan,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    """Offer ``plan`` to the bot polling ``tg`` and report. The bot must already be polling.

    ``tg`` must record requests (``record=True``). ``progress(replied, total)`` is called as
    replies come in.
    """
    rng = random.Random(plan.seed)
    state = tg.state
    users: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for i in range(plan.chats):
        uid = 10_000_000 + i
        user = {"id": uid, "is_bot": False, "first_name": f"User{i}", "language_code": "en"}
        chat = {"id": uid, "type": "private", "first_name": f"User{i}"}
        state.register_chat(chat)
        users.append((user, chat))
    tracker = _Tracker(tg, plan.updates)
    per_chat: dict[int, int] = {}
    even = plan.spread == "even"

    def push(n: int) -> None:
        now = state.now()
        mono = time.monotonic()
        for _ in range(n):
            index = len(tracker.sent_at) % plan.chats if even else rng.randrange(plan.chats)
            user, chat = users[index]
            number = str(len(tracker.sent_at) + 1)
            chat_id = chat["id"]
            seq = per_chat.get(chat_id, 0)
            per_chat[chat_id] = seq + 1
            tracker.seq[number] = seq
            tracker.sent_at[number] = (chat_id, mono)
            message = {
                "message_id": state.next_message_id(chat_id),
                "from": user,
                "chat": chat,
                "date": now,
                "text": number,
            }
            state.push_update("message", message)

    started = time.monotonic()
    if plan.rate <= 0:
        push(plan.updates)
    else:
        asyncio.get_running_loop().create_task(_pace(push, plan))

    deadline = started + plan.timeout
    step = max(1, plan.updates // 100)
    next_report = step
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break

        def enough(target: int = next_report) -> bool:
            return tracker.scan() or len(tracker.first) >= target

        try:
            await tg.wait_for(enough, timeout=left)
        except TimeoutError:
            break
        if progress is not None:
            progress(len(tracker.first), plan.updates)
        if len(tracker.first) >= plan.updates:
            break
        next_report = min(plan.updates, len(tracker.first) + step)
    tracker.scan()

    latencies = sorted(v * 1000 for v in tracker.first.values())
    seconds = (tracker.last_reply or time.monotonic()) - started
    replied = len(tracker.first)
    return LoadReport(
        updates=plan.updates,
        replied=replied,
        seconds=round(seconds, 3),
        throughput=round(replied / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(_percentile(latencies, 0.50), 2),
        p99_ms=round(_percentile(latencies, 0.99), 2),
        violations=tracker.violations,
        lost=plan.updates - replied,
        duplicates=tracker.duplicates,
    )


async def _pace(push: Callable[[int], None], plan: LoadPlan) -> None:
    start = time.monotonic()
    pushed = 0
    while pushed < plan.updates:
        # Pacing a load generator by the clock is the point here, not a synchronisation.
        await asyncio.sleep(_TICK)
        due = min(plan.updates, int((time.monotonic() - start) * plan.rate))
        if due > pushed:
            push(due - pushed)
            pushed = due
