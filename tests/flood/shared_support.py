"""What the shared-bucket tests share: a clock tests move by hand, the window bound checked in
one pass, and Redis key prefixes of their own (deleted after)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import redis

from tgrunner.flood import Rate

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    """Seconds that move only when told (``clock.now += gap``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def worst_window(spans: Iterable[tuple[float, float]], rate: Rate) -> float:
    """How far the calls exceed ``burst + w * per_second`` in their worst window (0 or less:
    never), each call known to leave somewhere in ``(lo, hi)``.

    In ``lo`` order, calls i..j all left within ``[lo_i, max(hi_i..hi_j)]``, so the count
    ``j - i + 1`` must not pass ``burst + rate * (max hi - lo_i)``; a true excess larger than
    the uncertainty times the rate shows. One pass: the check is
    ``(j + 1 - rate * H_j) - min over i <= j of (i - rate * lo_i) <= burst``.
    """
    ordered = sorted(spans)
    base = ordered[0][0] if ordered else 0.0  # small numbers: no rounding at a time of day
    ordered = [(lo - base, hi - base) for lo, hi in ordered]
    worst = -float(rate.burst)
    lowest = float("inf")
    highest = -float("inf")
    for j, (lo, hi) in enumerate(ordered):
        lowest = min(lowest, j - rate.per_second * lo)
        highest = max(highest, hi)
        worst = max(worst, (j + 1 - rate.per_second * highest) - lowest - rate.burst)
    return worst


def sync_redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2.0, socket_timeout=5.0)


def drop_keys(prefix: str) -> int:
    """Delete every key under ``prefix``; how many there were."""
    client = sync_redis()
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    finally:
        client.close()


def count_keys(prefix: str) -> int:
    client = sync_redis()
    try:
        return sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test (or helper) uses; its keys are deleted at the end."""
    prefix = f"tgtest:flood:{os.getpid()}:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        drop_keys(prefix)
