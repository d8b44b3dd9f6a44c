"""The bridges of ``python -m bench --scenario state`` against their peers, in this process.

- **fsm**: one user's FSM cycle, ``get_data`` then ``update_data``, on aiogram's
  ``RedisStorage`` inside ``RedisEventIsolation.lock`` (what aiogram offers against lost
  updates), on ``RedisStorage`` alone (aiogram's default: no isolation), and on tgrunner's
  ``TgrunnerStorage`` (Redis and SQLite), whose ``update_data`` is a transaction and whose
  per-user exclusion comes from tgrunner's lanes, which cost no store call. Cycles one after
  another (p50/p99), then 64 at a time on distinct users (cycles/s), then every user's count
  checked.
- **persistence**: the cost per update of PTB's persistence call, as PTB's ``Application``
  makes them for an update that changed one user's ``user_data``: ``refresh_user_data``, then
  ``update_user_data`` with a deep copy; ``PicklePersistence`` with its defaults (each call
  rewrites the whole file), with ``on_flush=True`` (memory only until ``flush``), and
  ``TgrunnerPersistence`` on each backend (one transaction per call, written through).
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from bench.state_proc import aiogram_fsm

if TYPE_CHECKING:
    from bench.state import Places, Sizes

__all__ = ["FSM_ROWS", "PERSISTENCE_ROWS", "fsm_row", "persistence_row", "steps"]

FSM_ROWS = {
    "aiogram-isolation": "aiogram RedisStorage + RedisEventIsolation",
    "aiogram-plain": "aiogram RedisStorage, no isolation (its default)",
    "tgrunner-redis": "TgrunnerStorage on redis",
    "tgrunner-sqlite": "TgrunnerStorage on sqlite",
}
PERSISTENCE_ROWS = {
    "ptb-pickle": "PTB PicklePersistence (defaults)",
    "ptb-pickle-10k": "PTB PicklePersistence (defaults), 10,000 users",
    "ptb-pickle-on-flush": "PTB PicklePersistence(on_flush=True)",
    "tgrunner-sqlite": "TgrunnerPersistence on sqlite",
    "tgrunner-redis": "TgrunnerPersistence on redis",
    "tgrunner-postgresql": "TgrunnerPersistence on postgresql",
    "tgrunner-mysql": "TgrunnerPersistence on mysql",
}
AT_RISK = {
    "ptb-pickle": "≤ 60 s of changes (update_interval); a crash while the file is rewritten "
    "in place corrupts it",
    "ptb-pickle-on-flush": "every change since start (written at shutdown only)",
    "tgrunner": "nothing (written before the update counts as finished)",
}
Step = tuple[str, str, str, Callable[[], Coroutine[Any, Any, Any]]]


def _ms(seconds: list[float]) -> dict[str, Any]:
    from bench.state import percentiles

    return {**percentiles(seconds), "mean_ms": round(sum(seconds) / len(seconds) * 1000, 4)}


async def fsm_row(places: Places, row: str, sizes: Sizes) -> dict[str, Any]:
    """One FSM storage: sequential cycles, concurrent cycles, then the counts checked."""
    from aiogram.fsm.storage.base import StorageKey

    from tgrunner.state import open_store
    from tgrunner.state.bridges.aiogram import TgrunnerStorage

    result: dict[str, Any] = {
        "part": "fsm",
        "row": row,
        "label": FSM_ROWS[row],
        "framework": "aiogram" if row.startswith("aiogram") else "tgrunner",
        "users": sizes.users,
    }
    store = None
    if row.startswith("aiogram"):
        places._used.add("aiogram")
        storage, isolation = aiogram_fsm(places.redis_url, f"{places.prefix}fsm-{row}")
        if row == "aiogram-plain":
            isolation = None
    else:
        store = open_store(places.url(row.removeprefix("tgrunner-"), "fsm"), purge_interval=0)
        storage, isolation = TgrunnerStorage(store), None

    async def cycle(user: int) -> None:
        key = StorageKey(bot_id=1, chat_id=user, user_id=user)
        if isolation is None:
            data = await storage.get_data(key)
            await storage.update_data(key, {"n": data.get("n", 0) + 1, "step": "confirm"})
            return
        async with isolation.lock(key):
            data = await storage.get_data(key)
            await storage.update_data(key, {"n": data.get("n", 0) + 1, "step": "confirm"})

    try:
        for user in range(sizes.users):  # every user has a record before the measure
            await cycle(user)
        costs = []
        for i in range(sizes.sequential):
            t = time.perf_counter()
            await cycle(i % sizes.users)
            costs.append(time.perf_counter() - t)
        result.update(_ms(costs))
        per_lane = max(1, 2 * sizes.sequential // sizes.concurrency)
        lanes = [range(t, sizes.users, sizes.concurrency) for t in range(sizes.concurrency)]

        failed: list[str] = []

        async def lane(users: range) -> None:
            for i in range(per_lane):
                try:
                    await cycle(users[i % len(users)])
                except Exception as exc:  # counted: what a bot's handler would get
                    failed.append(f"{type(exc).__name__}: {exc}")

        t = time.perf_counter()
        await asyncio.gather(*(lane(users) for users in lanes))
        total = per_lane * sizes.concurrency
        result["cycles_per_s"] = round((total - len(failed)) / (time.perf_counter() - t), 1)
        result["failed"] = len(failed)
        result["error"] = failed[0] if failed else ""
        counts = 0
        for user in range(sizes.users):
            data = await storage.get_data(StorageKey(bot_id=1, chat_id=user, user_id=user))
            counts += data.get("n", 0)
        expected = sizes.users + sizes.sequential + total - len(failed)
        result["lost_updates"] = expected - counts
    finally:
        await storage.close()
        if store is not None:
            await store.close()
    return result


def _user(uid: int) -> dict[str, Any]:
    return {"name": f"user {uid}", "lang": "en", "n": 0, "recent": [1, 2, 3, 4, 5]}


async def persistence_row(places: Places, row: str, sizes: Sizes) -> dict[str, Any]:
    """One persistence: ``sizes.users`` users stored through it, then one user's update
    after another (p50/p99 per update); PicklePersistence's ``flush`` timed too."""
    from telegram.ext import ExtBot, PicklePersistence

    from tgrunner.state import open_store
    from tgrunner.state.bridges.ptb import TgrunnerPersistence

    users = 10_000 if row == "ptb-pickle-10k" else sizes.users
    updates = min(sizes.sequential, 300) if row == "ptb-pickle-10k" else sizes.sequential
    kind = "tgrunner" if row.startswith("tgrunner") else row.removesuffix("-10k")
    result: dict[str, Any] = {
        "part": "persistence",
        "row": row,
        "label": PERSISTENCE_ROWS[row],
        "framework": "tgrunner" if kind == "tgrunner" else "ptb",
        "users": users,
        "updates": updates,
        "at_risk": AT_RISK[kind],
    }
    store = None
    if kind == "tgrunner":
        store = open_store(places.url(row.removeprefix("tgrunner-"), "ptb"), purge_interval=0)
        persistence: Any = TgrunnerPersistence(store)
    else:
        places.dir.mkdir(parents=True, exist_ok=True)
        path = places.dir / f"{row}.pickle"
        persistence = PicklePersistence(path, on_flush=row == "ptb-pickle-on-flush")
        persistence.set_bot(ExtBot("123:bench"))
    app_data: dict[int, dict[str, Any]] = {}

    async def handled(uid: int, change: Callable[[dict[str, Any]], None]) -> None:
        data = app_data.setdefault(uid, {})
        await persistence.refresh_user_data(uid, data)
        change(data)
        await persistence.update_user_data(uid, copy.deepcopy(data))

    try:
        await persistence.get_user_data()  # what PTB's Application reads at start
        fill: Callable[[int], Awaitable[None]]
        if kind == "tgrunner" or users <= sizes.users:

            async def fill(uid: int) -> None:
                await handled(uid, lambda d: d.update(_user(uid)))

        else:  # 10,000 full rewrites would take minutes: the users go in at once

            async def fill(uid: int) -> None:
                app_data[uid] = _user(uid)
                persistence.user_data = persistence.user_data or {}
                persistence.user_data[uid] = copy.deepcopy(app_data[uid])

        for uid in range(users):
            await fill(uid)
        rng = random.Random(7)
        costs = []
        for _ in range(updates):
            uid = rng.randrange(users)
            t = time.perf_counter()
            await handled(uid, lambda d: d.__setitem__("n", d["n"] + 1))
            costs.append(time.perf_counter() - t)
        result.update(_ms(costs))
        if kind != "tgrunner":
            t = time.perf_counter()
            await persistence.flush()
            result["flush_ms"] = round((time.perf_counter() - t) * 1000, 3)
            result["file_kb"] = round(path.stat().st_size / 1024, 1)
    finally:
        if store is not None:
            await store.close()
    return result


def steps(places: Places, wanted: list[str], sizes: Sizes) -> list[Step]:
    """The fsm and persistence rows that ``wanted`` (backends and peers) asks for, as
    ``(part, row, the backend it needs, its coroutine)``."""
    out: list[Step] = []
    for row in FSM_ROWS:
        peer = row.startswith("aiogram")
        need = "redis" if peer else row.removeprefix("tgrunner-")
        if ("aiogram" if peer else need) in wanted:
            out.append(("fsm", row, need, partial(fsm_row, places, row, sizes)))
    for row in PERSISTENCE_ROWS:
        peer = row.startswith("ptb")
        need = "memory" if peer else row.removeprefix("tgrunner-")
        if ("ptb" if peer else need) in wanted:
            out.append(("persistence", row, need, partial(persistence_row, places, row, sizes)))
    return out
