"""The measures of the flood benchmark (:mod:`bench.flood`), from FakeTelegram's record of calls.

Every message the harness pushes has a unique text, and every message the bot is expected to
send in answer has one too, so each ``sendMessage`` the fake recorded names what it delivers.
:class:`Deliveries` scans the record incrementally, per chat: what was delivered (status 200),
once or more, in which order, and how many sends were answered 429 (or another error).

Two parts live here (the broadcast is :mod:`bench.flood_broadcast`):

- :func:`echo3`: each chat sends ``per_chat`` messages at once to a bot answering each with 3.
- :func:`storm`: a steady rate over many chats, first calm, then with a 429 storm on a few
  chats (``Faults(flood_chats=...)``): the other chats' reply latency, both times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tgrunner.testing import FakeTelegram, Faults, FloodLimits
from tgrunner.testing.fake.faults import is_send_method

__all__ = [
    "LIMITS",
    "Deliveries",
    "EchoPlan",
    "StormPlan",
    "drain",
    "echo3",
    "percentile",
    "push",
    "register",
    "storm",
    "warm_up",
]

LIMITS = FloodLimits(per_chat_per_second=1.0, private_burst=3, per_group_per_minute=20)
"""Telegram's documented limits as FakeTelegram enforces them in every part: 1 message/s per
chat with a burst of 3 in a private chat, 20/min per group. Its global 30/s is added in the
broadcast part only (see :mod:`bench.flood`)."""

WARM_CHAT = 9_000_000
WARM_CHATS = 10
ECHO_CHAT = 10_000_000
STORM_CHAT = 11_000_000
_TICK = 0.002  # how often the paced load pushes what has come due


@dataclass(frozen=True, slots=True)
class EchoPlan:
    """The echo-3 load: ``chats`` chats each send ``per_chat`` messages at once, every one
    answered with ``replies`` messages; the wait ends when all are delivered, after ``quiet``
    seconds without a send, or at ``timeout``."""

    chats: int = 200
    per_chat: int = 10
    replies: int = 3
    timeout: float = 600.0
    quiet: float = 6.0

    @property
    def expected(self) -> int:
        return self.chats * self.per_chat * self.replies

    @property
    def ideal_seconds(self) -> float:
        """The shortest time the fake's limits allow for every chat's answers: a chat's burst
        leaves at once, then one message per ``1 / per_chat_per_second`` seconds."""
        assert LIMITS.per_chat_per_second is not None
        per_chat = self.per_chat * self.replies
        return max(per_chat - LIMITS.private_burst, 0) / LIMITS.per_chat_per_second


@dataclass(frozen=True, slots=True)
class StormPlan:
    """The 429 storm: ``chats`` chats take turns (even spread) at ``rate`` messages/s for
    ``seconds`` per phase; in the storm phase ``stormed`` of them (every ``chats / stormed``-th)
    get 429 with ``retry_after`` on every send. A phase waits up to ``timeout`` s more for the
    other chats' replies; after the storm is lifted, up to ``retry_after * 2 + 30`` s for the
    stormed chats', or until none came for ``retry_after + settle`` s."""

    chats: int = 1000
    stormed: int = 10
    rate: float = 25.0
    seconds: float = 30.0
    retry_after: int = 10
    timeout: float = 60.0
    settle: float = 5.0

    def stormed_ids(self) -> frozenset[int]:
        step = max(1, self.chats // self.stormed)
        return frozenset(STORM_CHAT + i for i in range(0, self.chats, step)[: self.stormed])


def register(tg: FakeTelegram, chat_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A private chat (and its user) in the fake; the pair :func:`push` takes."""
    user = {"id": chat_id, "is_bot": False, "first_name": f"U{chat_id}"}
    chat = {"id": chat_id, "type": "private", "first_name": f"U{chat_id}"}
    tg.state.register_chat(chat)
    return user, chat


def push(tg: FakeTelegram, who: tuple[dict[str, Any], dict[str, Any]], text: str) -> None:
    """A text message from ``who`` (a :func:`register` pair) to the bot."""
    user, chat = who
    state = tg.state
    state.push_update(
        "message",
        {"message_id": state.next_message_id(chat["id"]), "from": user, "chat": chat,
         "date": state.now(), "text": text},
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


class Deliveries:
    """The bot's ``sendMessage`` calls from record index ``start`` on, matched to the texts
    expected (:meth:`expect`), per chat and per group of chats.

    - ``first[text]``: the record time (Unix) of the text's first delivery (status 200);
    - ``duplicates``: deliveries of a text already delivered; ``violations``: deliveries of a
      text that comes before one already delivered in its chat (order broken);
    - ``floods`` / ``errors``: sends answered 429 / another error, by group;
    - ``sends``: send calls seen (any method counted by flood limits, any status).
    """

    def __init__(self, tg: FakeTelegram, start: int) -> None:
        self.tg = tg
        self._seen = start
        self._expect: dict[str, tuple[int, int, str]] = {}  # text -> (chat, index, group)
        self.pushed_at: dict[str, float] = {}
        self.first: dict[str, float] = {}
        self.expected: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.floods: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._group_of: dict[int, str] = {}
        self._high: dict[int, int] = {}
        self.bad_chats: set[int] = set()
        self.duplicates = 0
        self.violations = 0
        self.sends = 0

    def expect(self, text: str, chat_id: int, index: int, pushed_at: float, group: str) -> None:
        """``text`` is due in ``chat_id`` at position ``index``, for a message pushed at
        ``pushed_at`` (Unix time)."""
        self._expect[text] = (chat_id, index, group)
        self.pushed_at[text] = pushed_at
        self._group_of[chat_id] = group
        self.expected[group] = self.expected.get(group, 0) + 1

    def scan(self) -> None:
        records = self.tg.requests
        end = len(records)
        for i in range(self._seen, end):
            r = records[i]
            if not is_send_method(r.method):
                continue
            chat_id = r.params.get("chat_id")
            group = self._group_of.get(chat_id) if isinstance(chat_id, int) else None
            if group is None:
                continue  # warm-up, control or another part's chat
            self.sends += 1
            if r.status != 200:
                counts = self.floods if r.status == 429 else self.errors
                counts[group] = counts.get(group, 0) + 1
                continue
            found = self._expect.get(str(r.params.get("text", "")))
            if found is None or found[0] != chat_id:
                self.errors[group] = self.errors.get(group, 0) + 1
                self.bad_chats.add(chat_id)
                continue
            text = str(r.params["text"])
            if text in self.first:
                self.duplicates += 1
                self.bad_chats.add(chat_id)
                continue
            self.first[text] = r.time
            self.delivered[group] = self.delivered.get(group, 0) + 1
            index = found[1]
            if index < self._high.get(chat_id, -1):
                self.violations += 1
                self.bad_chats.add(chat_id)
            else:
                self._high[chat_id] = index
        self._seen = end

    def complete(self, group: str) -> bool:
        return self.delivered.get(group, 0) >= self.expected.get(group, 0)

    def latencies_ms(self, group: str) -> list[float]:
        """Sorted push-to-delivery times of ``group``'s delivered texts, in ms."""
        return sorted(
            (t - self.pushed_at[text]) * 1000
            for text, t in self.first.items()
            if self._expect[text][2] == group
        )

    def chats_intact(self, group: str) -> int:
        """Chats of ``group`` whose every text came once, in order."""
        missing = {c for text, (c, _, g) in self._expect.items() if g == group and text not in
                   self.first}  # fmt: skip
        chats = {c for c, g in self._group_of.items() if g == group}
        return len(chats - missing - self.bad_chats)


async def drain(
    tg: FakeTelegram,
    deliveries: Deliveries,
    done: Callable[[], bool],
    *,
    quiet: float,
    deadline: float,
) -> str:
    """Wait until ``done()``, or no send for ``quiet`` s, or the monotonic ``deadline``; say
    which (``"all delivered"``, ``"no send for N s"``, ``"timed out"``)."""
    while True:
        deliveries.scan()
        if done():
            return "all delivered"
        left = deadline - time.monotonic()
        if left <= 0:
            return "timed out"
        mark = deliveries.sends

        def moved(mark: int = mark) -> bool:
            deliveries.scan()
            return deliveries.sends > mark or done()

        try:
            await tg.wait_for(moved, timeout=min(quiet, left))
        except TimeoutError:
            if quiet < left:
                deliveries.scan()
                return "all delivered" if done() else f"no send for {quiet:g} s"


async def warm_up(tg: FakeTelegram, replies: int) -> None:
    """One message in each of :data:`WARM_CHATS` chats of their own, answered before the
    measure (imports, connections, both worker processes); their chats are not counted."""
    for c in range(WARM_CHATS):
        push(tg, register(tg, WARM_CHAT + c), f"warm-{c}")
    for c in range(WARM_CHATS):
        await tg.wait_for_replies(WARM_CHAT + c, replies, timeout=60)


async def echo3(tg: FakeTelegram, plan: EchoPlan) -> dict[str, Any]:
    """Push every chat's messages at once (chat by chat: a chat's messages are consecutive
    updates) and wait for the answers; the measures."""
    who = [register(tg, ECHO_CHAT + c) for c in range(plan.chats)]
    d = Deliveries(tg, len(tg.requests))
    t0, m0 = time.time(), time.monotonic()
    for c, pair in enumerate(who):
        for m in range(plan.per_chat):
            text = f"{c}.{m}"
            for k in range(plan.replies):
                d.expect(f"{text}/{k + 1}", pair[1]["id"], m * plan.replies + k, t0, "chats")
            push(tg, pair, text)
    ended = await drain(
        tg, d, lambda: d.complete("chats"), quiet=plan.quiet, deadline=m0 + plan.timeout
    )
    delivered = d.delivered.get("chats", 0)
    seconds = max(d.first.values(), default=t0) - t0
    throughput = delivered / seconds if seconds > 0 else 0.0
    allowed = plan.expected / plan.ideal_seconds if plan.ideal_seconds > 0 else None
    # Of the rate the limits allow, what was delivered over the time taken, that time no less
    # than the limits' least: 100 % is every answer in the least time; a lost one counts.
    share = None
    if allowed:
        share = delivered / plan.expected * plan.ideal_seconds / max(seconds, plan.ideal_seconds)
    return {
        "expected": plan.expected,
        "delivered": delivered,
        "lost": plan.expected - delivered,
        "duplicates": d.duplicates,
        "violations": d.violations,
        "floods": d.floods.get("chats", 0),
        "errors": d.errors.get("chats", 0),
        "chats": plan.chats,
        "chats_intact": d.chats_intact("chats"),
        "seconds": round(seconds, 3),
        "ideal_seconds": round(plan.ideal_seconds, 3),
        "throughput": round(throughput, 1),
        "allowed_rate": round(allowed, 1) if allowed else None,
        "share": None if share is None else round(share, 4),
        "ended": ended,
    }


async def _pace(push_one: Callable[[int], None], rate: float, seconds: float) -> int:
    """Call ``push_one(n)`` for n = 0, 1, … at ``rate`` per second for ``seconds``."""
    total = max(1, round(rate * seconds))
    start, pushed = time.monotonic(), 0
    while pushed < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while pushed < due:
            push_one(pushed)
            pushed += 1
        # Pacing a load generator by the clock is the point here, not a synchronisation.
        await asyncio.sleep(_TICK)
    return total


def _quantiles(d: Deliveries, group: str) -> dict[str, float | None]:
    ms = d.latencies_ms(group)
    at = {q: percentile(ms, q) for q in (0.5, 0.99)}
    return {
        "p50_ms": None if at[0.5] is None else round(at[0.5], 2),
        "p99_ms": None if at[0.99] is None else round(at[0.99], 2),
        "max_ms": round(ms[-1], 2) if ms else None,
    }


async def _phase(
    tg: FakeTelegram,
    who: list[tuple[dict[str, Any], dict[str, Any]]],
    plan: StormPlan,
    stormed: frozenset[int],
    phase: str,
    offset: int,
) -> tuple[dict[str, Any], Deliveries]:
    d = Deliveries(tg, len(tg.requests))

    def push_one(n: int) -> None:
        pair = who[(offset + n) % len(who)]
        chat_id = pair[1]["id"]
        text = f"{phase}-{n}"
        d.expect(text, chat_id, n, time.time(), "stormed" if chat_id in stormed else "others")
        push(tg, pair, text)

    start = time.monotonic()
    pacer = asyncio.ensure_future(_pace(push_one, plan.rate, plan.seconds))
    try:
        ended = await drain(
            tg,
            d,
            lambda: pacer.done() and d.complete("others"),
            quiet=max(plan.seconds, plan.retry_after) + plan.settle,
            deadline=start + plan.seconds + plan.timeout,
        )
    finally:
        pushed = await pacer
    figures = {
        "messages": d.expected.get("others", 0),
        "delivered": d.delivered.get("others", 0),
        **_quantiles(d, "others"),
        "floods": d.floods.get("others", 0),
        "errors": d.errors.get("others", 0),
        "ended": ended,
        "pushed": pushed,
    }
    figures["lost"] = figures["messages"] - figures["delivered"]
    return figures, d


async def storm(tg: FakeTelegram, plan: StormPlan) -> dict[str, Any]:
    """The calm phase, then the storm phase (its chats 429 on every send), then the storm
    lifted and its chats' answers awaited; the measures of each."""
    who = [register(tg, STORM_CHAT + c) for c in range(plan.chats)]
    stormed = plan.stormed_ids()
    calm, d_calm = await _phase(tg, who, plan, stormed, "calm", 0)
    tg.faults = Faults(flood_chats=stormed, retry_after=plan.retry_after)
    try:
        hit, d = await _phase(tg, who, plan, stormed, "storm", calm["pushed"])
    finally:
        tg.faults = None
    lifted = time.monotonic()
    ended = await drain(
        tg, d, lambda: d.complete("stormed"), quiet=plan.retry_after + plan.settle,
        deadline=lifted + plan.retry_after * 2 + 30,
    )  # fmt: skip
    d_calm.scan()
    rise = None
    if calm["p99_ms"] is not None and hit["p99_ms"] is not None:
        rise = round(hit["p99_ms"] - calm["p99_ms"], 2)
    return {
        "chats": plan.chats,
        "stormed_chats": len(stormed),
        "calm": calm,
        "storm": hit,
        "p99_rise_ms": rise,
        "stormed_messages": d.expected.get("stormed", 0),
        "stormed_delivered": d.delivered.get("stormed", 0),
        "stormed_floods": d.floods.get("stormed", 0),
        "stormed_ended": ended,
        "duplicates": d.duplicates + d_calm.duplicates,
        "violations": d.violations + d_calm.violations,
    }
