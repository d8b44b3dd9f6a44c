"""``python -m bench --scenario state``: the state store on every backend, and its peers.

Five parts, every backend's rows measured in the same run, on this machine's services
(PostgreSQL, MariaDB and Redis/Valkey on loopback; a server that does not answer skips its
rows):

- **update**: ``store.update(key, fn)`` one after another, p50/p99 per call (and ``get``);
- **transactions**: two-key transfers between 100 accounts, 64 at a time, in one process and
  in two (:mod:`bench.state_proc`); transactions/s, and the total balance checked after;
- **handoff**: two processes take turns on one key; the time from the holder's last act before
  its commit (a marker it writes) to the waiter's acquisition; aiogram's
  ``RedisEventIsolation`` lock the same way;
- **fsm** and **persistence**: the aiogram and PTB bridges against aiogram's
  ``RedisStorage`` + ``RedisEventIsolation`` and PTB's ``PicklePersistence``
  (:mod:`bench.state_peers`).

Each run has its own SQL table, Redis key prefix (database :data:`REDIS_DB`) and SQLite file,
all removed at the end. Results: ``state.md``, ``state.png``, ``state.json``
(:mod:`bench.state_report`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from typing import Any

from bench import state_peers, state_report
from bench.harness import LOGS, REPO, SCRATCH, _env
from bench.state_proc import TaskTurns, contend, store_round, transfers

__all__ = ["BACKENDS", "PEERS", "REDIS_DB", "Places", "Sizes", "percentiles", "run"]

BACKENDS = ("memory", "sqlite", "postgresql", "mysql", "redis")
PEERS = ("aiogram", "ptb")
SERVERS = {"postgresql": 5432, "mysql": 3306, "redis": 6379}
REDIS_DB = 7
"""The Redis database of this benchmark (its keys have a prefix of the run's own too)."""
START = 1000
"""Each account's balance before the transfers."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each part does (``--quick``: small counts, for development)."""

    sequential: int = 2000  # update: calls per backend; fsm and persistence: cycles per row
    transfers: int = 4000  # transactions: transfers per run, split between the processes
    concurrency: int = 64  # transactions and fsm: at a time, per process
    accounts: int = 100
    rounds: int = 200  # handoff: acquisitions per contender (tgrunner)
    aiogram_rounds: int = 50  # handoff: acquisitions per contender (aiogram: ~50 ms each)
    hold: float = 0.002  # handoff: seconds each holder keeps the lock
    users: int = 1000  # fsm and persistence: users with data

    @classmethod
    def of(cls, args: argparse.Namespace) -> Sizes:
        base = cls()
        if args.quick:
            base = cls(sequential=200, transfers=400, rounds=20, aiogram_rounds=10, users=200)
        if args.updates:
            base = cls(
                **{
                    **{f: getattr(base, f) for f in cls.__dataclass_fields__},
                    "sequential": args.updates,
                }
            )
        return base


def percentiles(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max of ``seconds``, in ms (nearest rank; None when empty)."""
    if not seconds:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    xs = sorted(seconds)

    def rank(q: float) -> float:
        return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 4)

    return {"p50_ms": rank(0.5), "p99_ms": rank(0.99), "max_ms": round(xs[-1] * 1000, 4)}


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class Places:
    """Where this run keeps its data: a table, a key prefix and a folder of its own."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:10]
        self.dir = SCRATCH / "state" / self.tag
        self.table = f"tgbench_{self.tag}"
        self.prefix = f"tgbench:{self.tag}:"
        self.redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
        self._used: set[str] = set()

    def missing(self, backend: str) -> str | None:
        """Why ``backend`` cannot run here, or None."""
        port = SERVERS.get(backend)
        if port is not None and not _reachable(port):
            return f"nothing answers on 127.0.0.1:{port}"
        return None

    def url(self, backend: str, name: str = "store") -> str:
        """A store URL on ``backend``; ``name`` tells apart stores of one run."""
        self._used.add(backend)
        table, prefix = f"{self.table}_{name}", f"{self.prefix}{name}:"
        if backend == "sqlite":
            self.dir.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{self.dir / name}.db"
        if backend == "postgresql":
            return f"postgresql://127.0.0.1:5432/test?table={table}"
        if backend == "mysql":
            return f"mysql://root@127.0.0.1:3306/test?table={table}"
        if backend == "redis":
            return f"{self.redis_url}?prefix={prefix}"
        return f"memory://{self.tag}-{name}"

    async def versions(self) -> str:
        """The servers' versions, and the drivers'."""
        import asyncmy
        import asyncpg
        import redis.asyncio

        found = []
        try:
            conn = await asyncpg.connect("postgresql://127.0.0.1:5432/test", timeout=5)
            try:
                pg = await conn.fetchval("SHOW server_version")
                sync = await conn.fetchval("SHOW synchronous_commit")
                found.append(f"PostgreSQL {pg.split()[0]} (synchronous_commit={sync})")
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError) as exc:
            found.append(f"PostgreSQL unreachable ({exc})")
        try:
            my = await asyncmy.connect(
                host="127.0.0.1", port=3306, user="root", database="test", connect_timeout=5
            )
            try:
                async with my.cursor() as cur:
                    await cur.execute("SELECT VERSION(), @@innodb_flush_log_at_trx_commit")
                    my_version, flush = await cur.fetchone()
                    found.append(
                        f"MariaDB/MySQL {my_version} (innodb_flush_log_at_trx_commit={flush})"
                    )
            finally:
                my.close()
        except Exception as exc:  # asyncmy raises its own and OSError
            found.append(f"MySQL unreachable ({exc})")
        client = redis.asyncio.Redis.from_url(self.redis_url, socket_connect_timeout=5)
        try:
            server = await client.info("server")
            name = "Valkey" if "valkey_version" in server else "Redis"
            aof = (await client.config_get("appendonly")).get("appendonly", "?")
            found.append(
                f"{name} {server.get('valkey_version') or server['redis_version']} "
                f"(appendonly={aof})"
            )
        except (OSError, redis.RedisError) as exc:
            found.append(f"Redis unreachable ({exc})")
        finally:
            await client.aclose()
        drivers = ", ".join(f"{name} {version(name)}" for name in ("asyncpg", "asyncmy", "redis"))
        return ", ".join(found) + f"; drivers {drivers}"

    async def clean(self) -> None:
        """Drop this run's tables, delete its Redis keys, remove its folder."""
        if "postgresql" in self._used:
            import asyncpg

            conn = await asyncpg.connect("postgresql://127.0.0.1:5432/test")
            try:
                names = await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE tablename LIKE $1", self.table + "%"
                )
                for row in names:
                    await conn.execute(f'DROP TABLE IF EXISTS "{row[0]}"')
            finally:
                await conn.close()
        if "mysql" in self._used:
            import asyncmy

            conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", database="test")
            try:
                async with conn.cursor() as cur:
                    await cur.execute("SHOW TABLES LIKE %s", (self.table + "%",))
                    for (name,) in await cur.fetchall():
                        await cur.execute(f"DROP TABLE IF EXISTS `{name}`")
            finally:
                conn.close()
        if self._used & {"redis", "aiogram"}:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self.redis_url)
            try:
                found = [k async for k in client.scan_iter(match=f"{self.prefix}*", count=1000)]
                if found:
                    await client.delete(*found)
            finally:
                await client.aclose()
        shutil.rmtree(self.dir, ignore_errors=True)


async def update_row(places: Places, backend: str, sizes: Sizes) -> dict[str, Any]:
    """``store.update`` and ``store.get`` on one key, one call after another."""
    from tgrunner.state import open_store

    result: dict[str, Any] = {
        "part": "update",
        "row": backend,
        "label": backend,
        "framework": "tgrunner",
        "ops": sizes.sequential,
    }
    store = open_store(places.url(backend, "update"), purge_interval=0)
    try:
        await store.open()
        for _ in range(50):  # connections, statements and the key's row are ready
            await store.update("count", lambda v: v + 1, default=0)
        costs, reads = [], []
        clock = time.perf_counter
        for _ in range(sizes.sequential):
            t = clock()
            await store.update("count", lambda v: v + 1, default=0)
            costs.append(clock() - t)
        for _ in range(sizes.sequential):
            t = clock()
            await store.get("count")
            reads.append(clock() - t)
        assert await store.get("count") == 50 + sizes.sequential
    finally:
        await store.close()
    result.update(percentiles(costs))
    result["mean_ms"] = round(sum(costs) / len(costs) * 1000, 4)
    result["get_p50_ms"] = percentiles(reads)["p50_ms"]
    return result


async def children(
    specs: list[dict[str, Any]], fds: list[tuple[int, ...]], name: str, timeout: float
) -> list[dict[str, Any]]:
    """Run one :mod:`bench.state_proc` child per spec (passing it ``fds``), start them
    together once all are ready, and return their figures."""
    LOGS.mkdir(parents=True, exist_ok=True)
    procs = []
    logs = [LOGS / f"state-{name}-{i}.log" for i in range(len(specs))]
    try:
        for spec, passed, log in zip(specs, fds, logs, strict=True):
            with log.open("wb") as err:
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "bench.state_proc",
                        json.dumps(spec),
                        cwd=REPO,
                        env=_env("", ""),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=err,
                        pass_fds=passed,
                    )
                )
        for proc, log in zip(procs, logs, strict=True):
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(f"a child did not start: {log.read_text()[-800:]}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        out = []
        for proc, log in zip(procs, logs, strict=True):
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(f"a child failed: {log.read_text()[-800:]}")
            out.append(json.loads(line))
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 30)
        return out
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def transactions_row(places: Places, backend: str, sizes: Sizes, loop: str) -> dict:
    """Transfers 64 at a time in one process, then in two; the total balance after each."""
    from tgrunner.state import open_store

    result: dict[str, Any] = {
        "part": "transactions",
        "row": backend,
        "label": backend,
        "framework": "tgrunner",
        "concurrency": sizes.concurrency,
        "transfers": sizes.transfers,
        "failed": 0,
        "total_kept": True,
        "negative": 0,
    }
    for procs in (1, 2):
        if procs == 2 and backend == "memory":
            result["tx_per_s_2"] = None  # memory:// lives in one process
            continue
        url = places.url(backend, f"bank{procs}")
        store = open_store(url, purge_interval=0)
        names = [f"acct:{i}" for i in range(sizes.accounts)]
        try:
            await asyncio.gather(*(store.set(n, START) for n in names))
            specs = [
                {
                    "job": "transfers",
                    "url": url,
                    "count": sizes.transfers // procs,
                    "concurrency": sizes.concurrency,
                    "accounts": sizes.accounts,
                    "seed": i,
                    "loop": loop,
                }
                for i in range(procs)
            ]
            if backend == "memory":
                work = (sizes.transfers, sizes.concurrency, sizes.accounts)
                out = [await transfers(store, *work, seed=0)]
            else:
                out = await children(specs, [()] * procs, f"bank-{backend}-{procs}", 300)
            balances = [await store.get(n) for n in names]
        finally:
            await store.close()
        wall = max(o["end"] for o in out) - min(o["start"] for o in out)
        done = sum(o["count"] - o["failed"] for o in out)
        result[f"tx_per_s_{procs}"] = round(done / wall, 1)
        result["failed"] += sum(o["failed"] for o in out)
        result["error"] = result.get("error") or next((o["error"] for o in out if o["error"]), "")
        result["total_kept"] &= sum(balances) == START * sizes.accounts
        result["negative"] += sum(1 for b in balances if b < 0)
    return result


async def handoff_row(places: Places, row: str, sizes: Sizes, loop: str) -> dict[str, Any]:
    """Two contenders take turns on one key (two processes; two tasks for memory)."""
    aiogram = row == "aiogram"
    rounds = sizes.aiogram_rounds if aiogram else sizes.rounds
    result: dict[str, Any] = {
        "part": "handoff",
        "row": row,
        "framework": "aiogram" if aiogram else "tgrunner",
        "label": "aiogram RedisEventIsolation (redis-py Lock)" if aiogram else row,
        "rounds": 2 * rounds,
        "hold_ms": sizes.hold * 1000,
        "processes": 1 if row == "memory" else 2,
    }
    if row == "memory":
        from tgrunner.state import open_store

        store = open_store(places.url("memory", "handoff"))
        a, b = TaskTurns(), TaskTurns()
        a.other, b.other = b, a
        out = list(
            await asyncio.gather(
                contend(store_round(store), 0, rounds, sizes.hold, a, first=True),
                contend(store_round(store), 1, rounds, sizes.hold, b, first=False),
            )
        )
        await store.close()
    else:
        if aiogram:
            places._used.add("aiogram")
            url = "aiogram"
        else:
            url = places.url(row, "handoff")
        r0, w1 = os.pipe()  # the turns of contender 0 ...
        r1, w0 = os.pipe()  # ... and of contender 1
        specs = [
            {
                "job": "handoff",
                "url": url,
                "redis_url": places.redis_url,
                "prefix": f"{places.prefix}fsm-handoff",
                "me": me,
                "rounds": rounds,
                "hold": sizes.hold,
                "fd_in": fd_in,
                "fd_out": fd_out,
                "loop": loop,
            }
            for me, fd_in, fd_out in ((0, r0, w0), (1, r1, w1))
        ]
        try:
            out = await children(specs, [(r0, w0), (r1, w1)], f"handoff-{row}", 120 + rounds)
        finally:
            for fd in (r0, w0, r1, w1):
                os.close(fd)
    handoffs = [h for o in out for h in o["handoffs"]]
    result.update(
        percentiles(handoffs), samples=len(handoffs), missed=sum(o["missed"] for o in out)
    )
    return result


def _line(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"  skipped: {r['skipped']}"
    shown = {k: v for k, v in r.items() if k not in ("part", "row", "label", "framework")}
    return "  " + "  ".join(f"{k} {v}" for k, v in shown.items())


async def _run_all(
    wanted: list[str], sizes: Sizes, loop: str, info: dict[str, str]
) -> list[dict[str, Any]]:
    places = Places()
    info["servers"] = await places.versions()
    print(f"servers: {info['servers']}", flush=True)
    steps: list[tuple[str, str, str, Callable[[], Coroutine[Any, Any, Any]]]] = []
    for b in (b for b in BACKENDS if b in wanted):
        steps.append(("update", b, b, partial(update_row, places, b, sizes)))
    for b in (b for b in BACKENDS if b in wanted):
        steps.append(("transactions", b, b, partial(transactions_row, places, b, sizes, loop)))
    for b in (b for b in (*BACKENDS, "aiogram") if b in wanted):
        need = "redis" if b == "aiogram" else b
        steps.append(("handoff", b, need, partial(handoff_row, places, b, sizes, loop)))
    steps += state_peers.steps(places, wanted, sizes)
    results = []
    try:
        for part, row, need, step in steps:
            print(f"- {part}: {row}", flush=True)
            why = places.missing(need)
            try:
                if why:
                    raise RuntimeError(why)
                result = await step()
            except Exception as exc:  # one broken row must not cost the others
                reason = f"{type(exc).__name__}: {exc}"
                result = {"part": part, "row": row, "label": row, "skipped": reason}
            print(_line(result), flush=True)
            results.append(result)
    finally:
        await places.clean()
    return results


def run(
    args: argparse.Namespace,
    argv: list[str],
    info: dict[str, str],
    *,
    run_on: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run,
) -> int:
    """The state scenario, from the parsed ``python -m bench`` arguments; ``run_on`` runs the
    harness's coroutine (on asyncio or uvloop; the children use the same loop)."""
    keys = (*BACKENDS, *PEERS)
    unknown = [k for k in args.rows or () if k not in keys]
    if unknown:
        print(f"unknown rows {unknown}; choose from {', '.join(keys)}", file=sys.stderr)
        return 2
    wanted = list(args.rows or keys)
    sizes = Sizes.of(args)
    info["pinning"] = "nothing pinned: the client processes and the servers share every core"
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    started = time.monotonic()
    results = run_on(_run_all(wanted, sizes, args.loop, info))
    info["load average at end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    info["run took"] = f"{time.monotonic() - started:.0f} s"
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv)
    state_report.write(args.out, results, info, state_report.describe(sizes), command)
    print(f"\nwrote {args.out / 'state.md'}, state.png and state.json", flush=True)
    return 0
