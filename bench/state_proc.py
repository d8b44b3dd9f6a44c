"""The workloads of ``python -m bench --scenario state`` that run in processes of their own.

``python -m bench.state_proc JSON`` runs one job (the JSON's ``job``) on the store at its
``url``:

- ``transfers``: ``count`` two-key transfers between ``accounts`` accounts, ``concurrency``
  at a time in this process (each a :meth:`Store.transaction` on both accounts: read, check
  the balance, write both);
- ``handoff``: one of two contenders for one key (:func:`contend`); ``url`` ``aiogram`` is
  aiogram's ``RedisEventIsolation`` lock around ``RedisStorage`` calls instead, on
  ``redis_url``.

The protocol: the child opens its store, warms it up and prints ``ready``; it starts at the
next line on its stdin, and prints one line of JSON with its figures. Timestamps are
``time.monotonic()``, which is one clock for every process of a Linux machine.

The handoff contenders take turns through two pipes (``fd_in``, ``fd_out``): a contender that
has the lock tells the other, which only then asks for it, and waits; the holder keeps the lock
``hold`` seconds and writes a marker (its id and the time) as its last act before it commits
or lets go. The waiter's handoff is the time from that marker to its own acquisition.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["HANDOFF_KEY", "PipeTurns", "TaskTurns", "contend", "main", "transfers"]

HANDOFF_KEY = "bench:handoff"
Acquired = Callable[[float, Any], Awaitable[dict[str, Any]]]
Round = Callable[[Acquired], Awaitable[None]]


async def transfers(store: Any, count: int, concurrency: int, accounts: int, seed: int) -> dict:
    """Run ``count`` random transfers of 1 to 10 between two of ``accounts`` accounts
    (``acct:N``), ``concurrency`` at a time; a transfer the balance cannot cover writes
    nothing. Its start, end, how many failed with a StateError (StateConflict,
    StateUnavailable: nothing of it was written), and the first such error."""
    from tgrunner.errors import StateError

    rng = random.Random(seed)
    work = iter([(*rng.sample(range(accounts), 2), rng.randint(1, 10)) for _ in range(count)])
    failed = 0
    first_error = ""

    async def worker() -> None:
        nonlocal failed, first_error
        for a, b, amount in work:  # one iterator, shared by the workers
            src, dst = f"acct:{a}", f"acct:{b}"
            try:
                async with store.transaction(src, dst) as tx:
                    have = await tx.get(src, 0)
                    if have >= amount:
                        tx.set(src, have - amount)
                        tx.set(dst, await tx.get(dst, 0) + amount)
            except StateError as exc:
                failed += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "start": start,
        "end": time.monotonic(),
        "count": count,
        "failed": failed,
        "error": first_error,
    }


class TaskTurns:
    """Turns between two tasks of one process (``signal`` wakes the other's ``turn``)."""

    def __init__(self) -> None:
        self._mine = asyncio.Semaphore(0)
        self.other: TaskTurns | None = None

    async def turn(self) -> None:
        await self._mine.acquire()

    def signal(self) -> None:
        assert self.other is not None
        self.other._mine.release()


class PipeTurns:
    """Turns between two processes: a byte on ``fd_out`` is the other's turn, a byte on
    ``fd_in`` this one's (read on the event loop, no thread)."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self._fd_in, self._fd_out = fd_in, fd_out
        self._mine = asyncio.Semaphore(0)
        asyncio.get_running_loop().add_reader(fd_in, self._readable)

    def _readable(self) -> None:
        for _ in os.read(self._fd_in, 64):
            self._mine.release()

    async def turn(self) -> None:
        await self._mine.acquire()

    def signal(self) -> None:
        os.write(self._fd_out, b"x")

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd_in)


async def contend(
    round_: Round, me: int, rounds: int, hold: float, turns: Any, *, first: bool
) -> dict[str, Any]:
    """Take the lock ``rounds`` times through ``round_`` (which locks, reads the marker, calls
    back, writes the marker it gets and lets go), holding it ``hold`` seconds each time; the
    handoffs measured (seconds), and the rounds that measured none (the waiter had not asked
    yet when the marker was written: a stalled process)."""
    handoffs: list[float] = []
    missed = 0
    asked = 0.0

    async def acquired(at: float, prev: Any) -> dict[str, Any]:
        nonlocal missed
        turns.signal()  # the other asks now, and waits for this hold to end
        if prev and prev.get("by") not in (None, me):
            if asked < prev["at"]:
                handoffs.append(at - prev["at"])
            else:
                missed += 1
        await asyncio.sleep(hold)
        return {"by": me, "at": time.monotonic()}

    for i in range(rounds):
        if i > 0 or not first:
            await turns.turn()
        asked = time.monotonic()
        await round_(acquired)
    return {"handoffs": handoffs, "missed": missed}


def store_round(store: Any) -> Round:
    """A handoff round on a tgrunner store: a transaction on :data:`HANDOFF_KEY`."""

    async def round_(acquired: Acquired) -> None:
        async with store.transaction(HANDOFF_KEY) as tx:
            at = time.monotonic()
            tx.set(HANDOFF_KEY, await acquired(at, await tx.get(HANDOFF_KEY)))

    return round_


def aiogram_round(storage: Any, isolation: Any, key: Any) -> Round:
    """A handoff round on aiogram: ``RedisEventIsolation.lock`` around ``get_data`` and
    ``set_data`` of ``RedisStorage``."""

    async def round_(acquired: Acquired) -> None:
        async with isolation.lock(key):
            at = time.monotonic()
            await storage.set_data(key, await acquired(at, await storage.get_data(key)))

    return round_


def aiogram_fsm(redis_url: str, prefix: str) -> tuple[Any, Any]:
    """aiogram's ``RedisStorage`` on ``redis_url`` with its keys under ``prefix``, and the
    ``RedisEventIsolation`` it creates (its defaults: a 60 s lock, polled every 0.1 s)."""
    from aiogram.fsm.storage.base import DefaultKeyBuilder
    from aiogram.fsm.storage.redis import RedisStorage

    builder = DefaultKeyBuilder(prefix=prefix, with_bot_id=True, with_destiny=True)
    storage = RedisStorage.from_url(redis_url, key_builder=builder)
    return storage, storage.create_isolation()


async def _job(spec: dict[str, Any]) -> dict[str, Any]:
    from tgrunner.state import open_store

    aiogram = spec["url"] == "aiogram"
    if aiogram:
        from aiogram.fsm.storage.base import StorageKey

        storage, isolation = aiogram_fsm(spec["redis_url"], spec["prefix"])
        key = StorageKey(bot_id=1, chat_id=1, user_id=1)
        await storage.get_data(key)
    else:
        store = open_store(spec["url"], purge_interval=0)
        await store.open()
        await asyncio.gather(
            *(store.update(f"warm:{os.getpid()}:{i}", lambda v: 1) for i in range(16))
        )
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        if spec["job"] == "transfers":
            return await transfers(
                store, spec["count"], spec["concurrency"], spec["accounts"], spec["seed"]
            )
        turns = PipeTurns(spec["fd_in"], spec["fd_out"])
        round_ = aiogram_round(storage, isolation, key) if aiogram else store_round(store)
        try:
            return await contend(
                round_, spec["me"], spec["rounds"], spec["hold"], turns, first=spec["me"] == 0
            )
        finally:
            turns.close()
    finally:
        if aiogram:
            await storage.close()
        else:
            await store.close()


def main() -> int:
    spec = json.loads(sys.argv[1])
    if spec.get("loop") == "uvloop":
        import uvloop

        result = uvloop.run(_job(spec))
    else:
        result = asyncio.run(_job(spec))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
