"""Token buckets for outgoing calls, as reservations: when may the next call of a key leave.

::

    table = BucketTable()
    private = Rate(1.0, burst=3)                 # 1 message/s into a private chat, bursts of 3
    at = table.reserve(("chat", 42), private, now=time.monotonic())
    # sleep until ``at`` (0 wait when at <= now), then send
    table.pause(("chat", 42), until=now + retry_after)   # a 429 named that chat

Each bucket is the generic cell rate algorithm (GCRA) in its "virtual scheduling" form: one
float, the *theoretical arrival time* ``tat``, instead of a token count and a refill stamp. A
call may leave at ``max(now, tat - tolerance)``, and then ``tat`` moves one interval on. So a
reservation is exact (the caller learns when to send, and nobody polls), a burst is the
tolerance, and in any window of ``w`` seconds at most ``burst + w * per_second`` calls leave,
whatever the clock does between calls.

Why not a library: the async rate limiters on PyPI (aiolimiter, limits) count tokens and make
the caller poll or wait on a shared condition; none takes reservations, pauses a key until a
time it is told (a 429's ``retry_after``), or reclaims idle keys, which is what keeps memory
flat over a million chats. The algorithm is a dozen lines.

A bucket that is full (its ``tat`` and pause are in the past) is the same as no bucket, so an
idle key is dropped from the table without changing any later answer: :meth:`BucketTable.reclaim`
runs by itself every thousand calls, over a slice of the table.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from dataclasses import dataclass

__all__ = ["Bucket", "BucketTable", "Rate"]


@dataclass(frozen=True, slots=True)
class Rate:
    """A limit: ``per_second`` calls per second on average, up to ``burst`` at once.

    ValueError for a rate that is not a positive finite number, or a burst below 1.
    """

    per_second: float
    burst: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.per_second, int | float) and math.isfinite(self.per_second)):
            raise ValueError(
                f"a rate must be a finite number of calls per second, not {self.per_second!r}"
            )
        if self.per_second <= 0:
            raise ValueError(f"a rate must be above 0 calls per second, not {self.per_second!r}")
        if not isinstance(self.burst, int) or isinstance(self.burst, bool) or self.burst < 1:
            raise ValueError(
                f"a burst must be a whole number of calls, 1 or more, not {self.burst!r}"
            )

    @classmethod
    def per_minute(cls, n: float, burst: int = 1) -> Rate:
        """``n`` calls per minute."""
        return cls(n / 60.0, burst)

    @property
    def interval(self) -> float:
        """Seconds between calls at the average rate."""
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        """How far ahead of its average schedule a call may leave: ``(burst - 1)`` intervals."""
        return (self.burst - 1) / self.per_second


class Bucket:
    """One key's bucket: its theoretical arrival time and the end of its pause (both on the
    caller's clock, in seconds)."""

    __slots__ = ("paused_until", "tat")

    def __init__(self) -> None:
        self.tat = -math.inf
        self.paused_until = -math.inf

    def reserve(self, rate: Rate, now: float) -> float:
        """Take the next slot: the time the call may leave (``now`` or later)."""
        at = self.peek(rate, now)
        self.tat = (self.tat if self.tat > at else at) + rate.interval
        return at

    def peek(self, rate: Rate, now: float) -> float:
        """The time the next call would leave (``now`` or later), without taking the slot."""
        at = self.tat - rate.tolerance
        if at < now:
            at = now
        if at < self.paused_until:
            at = self.paused_until
        return at

    def pause(self, until: float) -> None:
        """Let no call leave before ``until`` (a 429's end); a later pause wins."""
        if until > self.paused_until:
            self.paused_until = until

    def idle(self, now: float) -> bool:
        """True when the bucket is full and unpaused, the same as a new one."""
        return self.tat <= now and self.paused_until <= now


class BucketTable:
    """Buckets by key, made at first use and reclaimed when idle (see the module doc).

    - ``reclaim_every`` (default 1024): calls between two automatic sweeps;
    - ``sweep`` (default 2048): keys looked at by one automatic sweep, oldest first (more than
      ``reclaim_every``, so sweeps outpace new keys).

    Not thread-safe: use it from one event loop.
    """

    def __init__(self, *, reclaim_every: int = 1024, sweep: int = 2048) -> None:
        if reclaim_every < 1 or sweep < 1:
            raise ValueError("reclaim_every and sweep must be 1 or more")
        self._buckets: dict[Hashable, Bucket] = {}
        self._reclaim_every = reclaim_every
        self._sweep = sweep
        self._calls = 0
        self._cursor: Iterator[Hashable] | None = None

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._buckets

    def reserve(self, key: Hashable, rate: Rate, now: float) -> float:
        """The time a call on ``key`` may leave under ``rate`` (``now`` or later); the slot is
        taken."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket()
        at = bucket.reserve(rate, now)
        self._calls += 1
        if self._calls >= self._reclaim_every:
            self._calls = 0
            self.reclaim(now, limit=self._sweep)
        return at

    def peek(self, key: Hashable, rate: Rate, now: float) -> float:
        """The time a call on ``key`` would leave under ``rate``, without taking the slot (to
        refuse a call that would wait too long, and leave the bucket as it was)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return now
        return bucket.peek(rate, now)

    def pause(self, key: Hashable, until: float) -> None:
        """No call on ``key`` leaves before ``until``."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket()
        bucket.pause(until)

    def paused_until(self, key: Hashable) -> float:
        """The end of ``key``'s pause (``-inf`` when it has none)."""
        bucket = self._buckets.get(key)
        return -math.inf if bucket is None else bucket.paused_until

    def reclaim(self, now: float, *, limit: int | None = None) -> int:
        """Drop idle buckets, looking at ``limit`` keys at most (None: all), going on from
        where the last sweep stopped; how many were dropped."""
        buckets = self._buckets
        if limit is None:
            idle = [k for k, b in buckets.items() if b.idle(now)]
            for k in idle:
                del buckets[k]
            self._cursor = None
            return len(idle)
        seen: list[Hashable] = []
        cursor = self._cursor if self._cursor is not None else iter(list(buckets))
        for key in cursor:
            seen.append(key)
            if len(seen) >= limit:
                break
        else:
            cursor = None  # type: ignore[assignment]
        self._cursor = cursor
        dropped = 0
        for key in seen:
            bucket = buckets.get(key)
            if bucket is not None and bucket.idle(now):
                del buckets[key]
                dropped += 1
        return dropped
