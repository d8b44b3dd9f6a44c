"""What the RQ rows of the jobs benchmark share: their queues on the bench's Redis database
(13), the clean-up of those queues' keys (never the whole database), the waits on RQ's
registries, and plain ``rq worker`` processes."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import redis
import redis.asyncio as aredis

from tgrunner.jobs.backends._rq_common import QueueKeys

__all__ = [
    "DB",
    "REDIS",
    "cleanup",
    "fresh_queue",
    "redis_up",
    "rq_worker_argv",
    "sync_redis",
    "until",
    "workers_registered",
]

DB = 13
REDIS = f"redis://127.0.0.1:6379/{DB}"
_RQ = str(Path(sys.executable).with_name("rq"))


def sync_redis() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=6379, db=DB)


def redis_up() -> bool:
    """Whether Redis answers on 127.0.0.1:6379."""
    try:
        return bool(sync_redis().ping())
    except redis.RedisError:
        return False


def cleanup(name: str) -> None:
    """Delete queue ``name``'s keys and its jobs' (found in its list and registries), and the
    RQ workers that served it."""
    keys = QueueKeys(name)
    r = sync_redis()
    ids: set[bytes] = set(r.lrange(keys.queue, 0, -1))
    ids.update(r.lrange(f"{keys.queue}:intermediate", 0, -1))
    for key in (*keys.all[1:8], keys.deferred):
        ids.update(entry.split(b":")[0] for entry in r.zrange(key, 0, -1))
    doomed = [*keys.all[:8], keys.deferred, f"{keys.queue}:intermediate"]
    doomed += [f"rq:clean_registries:{name}", f"rq:workers:{name}"]
    for raw in r.smembers(f"rq:workers:{name}"):
        doomed.append(raw.decode())
        r.srem("rq:workers", raw)
    for job_id in ids:
        found = job_id.decode()
        runs = f"rq:executions:{found}"
        doomed += [keys.job + found, keys.results + found, runs]
        doomed += [f"rq:execution:{found}:{e.decode()}" for e in r.zrange(runs, 0, -1)]
    doomed += [k.decode() for k in r.scan_iter(f"{keys.queue}:intermediate:first_seen:*")]
    for i in range(0, len(doomed), 1000):
        r.delete(*doomed[i : i + 1000])
    r.srem(keys.all[8], keys.queue)
    r.close()


@asynccontextmanager
async def fresh_queue(prefix: str) -> AsyncIterator[tuple[str, str, aredis.Redis]]:
    """A new queue's name, its URL and a client, its keys deleted afterwards."""
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    client = aredis.Redis(host="127.0.0.1", port=6379, db=DB)
    try:
        yield name, f"{REDIS}?queue={name}", client
    finally:
        await client.aclose()
        cleanup(name)


async def until(test: Callable[[], Awaitable[bool]], timeout: float, every: float = 0.005) -> None:
    """Ask ``test()`` every ``every`` s until it is true (Redis wakes nothing in this
    process: a bench measures, and a few ms of polling are within its resolution);
    TimeoutError after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not await test():  # noqa: ASYNC110 (nothing to wait on: Redis is elsewhere)
            await asyncio.sleep(every)


async def workers_registered(client: aredis.Redis, name: str, count: int) -> None:
    """Until ``count`` plain RQ workers serve queue ``name`` (RQ's own worker registry)."""

    async def enough() -> bool:
        return int(await client.scard(f"rq:workers:{name}")) >= count

    await until(enough, 60, every=0.02)


def rq_worker_argv(name: str, worker_class: str) -> list[str]:
    """A plain ``rq worker`` of ``worker_class`` on queue ``name``."""
    return [_RQ, "worker", "-w", worker_class, "--url", REDIS, name]
