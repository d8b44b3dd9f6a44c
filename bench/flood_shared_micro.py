"""Micro-benchmark of a reservation on the shared flood buckets (``tgrunner.flood.shared``).

- the local ``BucketTable.reserve``, for scale;
- ``FileBuckets`` (one machine's processes): alone, and with a second process reserving on the
  same file at the same time (the lock contended);
- ``RedisBuckets`` (machines): one reservation at a time (a round trip each), and 32 at once
  (pipelined), on asyncio's loop and on uvloop.

Rates that never wait: the figure is the cost of taking a slot, not of waiting for it.

    .venv/bin/python bench/flood_shared_micro.py
    .venv/bin/python bench/flood_shared_micro.py --redis redis://127.0.0.1:6379/0 --number 100000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

from tgrunner.flood import BucketTable, Rate
from tgrunner.flood.backends.file import FileBuckets
from tgrunner.flood.backends.redis import RedisBuckets

FAST = Rate(1e9, burst=1)


def _best(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Microseconds per call, best of ``repeat``."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _hammer(path: str, number: int, start: Any, result: Any) -> None:
    buckets = FileBuckets(path)
    start.wait()
    began = time.perf_counter()
    for _ in range(number):
        buckets.reserve_now("bulk", FAST)
    result.put(time.perf_counter() - began)


def file_rows(number: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "flood.buckets")
        buckets = FileBuckets(path)
        table = BucketTable()
        rows = {
            "BucketTable.reserve (local, for scale)": _best(
                lambda: table.reserve("bulk", FAST, time.monotonic()), number, repeat
            ),
            "FileBuckets.reserve_now": _best(
                lambda: buckets.reserve_now("bulk", FAST), number, repeat
            ),
        }

        async def awaited() -> float:
            began = time.perf_counter()
            for _ in range(number):
                await buckets.reserve("bulk", FAST)
            return (time.perf_counter() - began) / number * 1e6

        rows["await FileBuckets.reserve"] = min(asyncio.run(awaited()) for _ in range(repeat))
        context = multiprocessing.get_context("spawn")
        start, result = context.Event(), context.Queue()
        procs = [
            context.Process(target=_hammer, args=(path, number, start, result)) for _ in range(2)
        ]
        for proc in procs:
            proc.start()
        time.sleep(1.0)  # both imported and ready (a bench: no test synchronisation needed)
        start.set()
        took = max(result.get(timeout=60) for _ in procs)
        for proc in procs:
            proc.join()
        rows["FileBuckets, 2 processes at once (each call)"] = took / number * 1e6
        asyncio.run(buckets.close())
    return rows


def redis_rows(url: str, number: int, loop: str) -> dict[str, float]:
    prefix = f"bench:flood:{uuid.uuid4().hex}:"

    async def main() -> dict[str, float]:
        buckets = RedisBuckets(url, prefix=prefix)
        await buckets.reserve("bulk", FAST)  # connected, script loaded
        began = time.perf_counter()
        for _ in range(number):
            await buckets.reserve("bulk", FAST)
        one = (time.perf_counter() - began) / number * 1e6
        began = time.perf_counter()
        for _ in range(number // 32):
            await asyncio.gather(*(buckets.reserve("bulk", FAST) for _ in range(32)))
        many = (time.perf_counter() - began) / (number // 32 * 32) * 1e6
        await buckets.close()
        return {
            f"RedisBuckets, one at a time ({loop})": one,
            f"RedisBuckets, 32 at once, pipelined ({loop})": many,
        }

    runner: Callable[[Awaitable[dict[str, float]]], dict[str, float]] = asyncio.run
    if loop == "uvloop":
        import uvloop

        runner = uvloop.run
    try:
        return runner(main())
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--number", type=int, default=200_000, help="file calls per run (200000)")
    p.add_argument("--repeat", type=int, default=5, help="runs, the best counts (default 5)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL ('' skips)")
    p.add_argument("--redis-number", type=int, default=10_000, help="Redis calls (10000)")
    args = p.parse_args()
    rows = file_rows(args.number, args.repeat)
    if args.redis:
        for loop in ("asyncio", "uvloop"):
            rows.update(redis_rows(args.redis, args.redis_number, loop))
    for name, micros in rows.items():
        print(f"{name:<52} {micros:8.2f} µs")


if __name__ == "__main__":
    main()
