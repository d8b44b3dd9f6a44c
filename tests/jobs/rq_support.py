"""Shared by the RQ backend's tests: a queue of its own on the real Redis, removed afterwards.

Each test gets a fresh queue name in DB 12, so tests never see each other's jobs, and only
the keys of that queue and of its jobs are deleted when it ends (never the whole database).
A plain module, not a conftest.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import redis

from services import need_service
from tgrunner.client.bot import Bot
from tgrunner.jobs.backends._rq_common import QueueKeys
from tgrunner.jobs.backends.rq import RQQueue
from tgrunner.jobs.backends.rq_source import RQSource
from tgrunner.jobs.queue import JobRequest, use_queue
from tgrunner.jobs.worker import JobWorker
from tgrunner.testing import FakeTelegram

__all__ = [
    "DB",
    "RQJobs",
    "cleanup",
    "closed_port",
    "fresh_queue",
    "need_redis",
    "queue_name",
    "request",
    "rq_jobs",
    "sync_redis",
]

DB = 12


def need_redis() -> None:
    """Skip unless Redis answers on 127.0.0.1:6379; fail instead when
    ``TGRUNNER_REQUIRE_SERVICES=1``."""
    need_service("redis")


def sync_redis() -> redis.Redis:
    """A plain client of the test database."""
    return redis.Redis(host="127.0.0.1", port=6379, db=DB)


def request(*args: Any, function: str = "mod:fn", **options: Any) -> JobRequest:
    """A job request for ``function`` with ``args`` pickled as Task.enqueue pickles them."""
    return JobRequest(function=function, payload=pickle.dumps((args, {}), protocol=5), **options)


def cleanup(name: str) -> None:
    """Delete queue ``name``'s keys and its jobs' (found in its list and registries), and the
    RQ workers that served it."""
    keys = QueueKeys(name)
    r = sync_redis()
    try:
        ids: set[bytes] = set(r.lrange(keys.queue, 0, -1))
        for key in (*keys.all[1:8], keys.deferred):
            for entry in r.zrange(key, 0, -1):
                ids.add(entry.split(b":")[0])
        doomed = [*keys.all[:8], keys.deferred, f"{keys.queue}:intermediate"]
        for job_id in ids:
            found = job_id.decode()
            runs = f"rq:executions:{found}"
            doomed += [keys.job + found, keys.results + found, runs]
            doomed += [f"rq:execution:{found}:{e.decode()}" for e in r.zrange(runs, 0, -1)]
        doomed += [k.decode() for k in r.scan_iter(f"{keys.queue}:intermediate:first_seen:*")]
        workers = f"rq:workers:{name}"
        for worker in r.smembers(workers):
            doomed.append(worker.decode())
            r.srem("rq:workers", worker)
        doomed.append(workers)
        r.delete(*doomed)
        r.srem(keys.all[8], keys.queue)
    finally:
        r.close()


def fresh_queue() -> Iterator[str]:
    """Yield the URL of a new queue on the test database (skips without Redis), deleting its
    keys afterwards. Wrap it in a fixture."""
    need_redis()
    name = f"t{uuid.uuid4().hex[:12]}"
    try:
        yield f"redis://127.0.0.1:6379/{DB}?queue={name}"
    finally:
        cleanup(name)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def queue_name(url: str) -> str:
    """The ``?queue=`` of one of :func:`fresh_queue`'s URLs."""
    return url.rpartition("queue=")[2]


@dataclass
class RQJobs:
    """A test's RQ queue (``queue``, open in this process for ``enqueue``), its worker's
    ``source``, a ``bot`` on FakeTelegram ``tg`` and the queue's ``url``."""

    tg: FakeTelegram
    url: str
    queue: RQQueue
    source: RQSource
    bot: Bot

    def worker(self, source: RQSource | None = None, **options: Any) -> JobWorker:
        """A worker (burst by default, short leases) on ``source`` (default the test's)."""
        options.setdefault("burst", True)
        options.setdefault("lease", 2.0)
        options.setdefault("renew_every", 0.5)
        return JobWorker(source or self.source, self.bot, **options)

    async def drain(self, **options: Any) -> JobWorker:
        """Run a burst worker until the queue is drained; return it (exit code 0 checked)."""
        worker = self.worker(**options)
        async with asyncio.timeout(30):
            code = await worker.serve()
        assert code == 0, worker.stats
        return worker

    def sent(self, method: str, message_id: int | None = None) -> list[dict[str, Any]]:
        """Parameters of the answered calls of ``method``; with ``message_id``, only those
        replying to that message."""
        found = [r.params for r in self.tg.calls(method) if r.ok]
        if message_id is None:
            return found
        return [p for p in found if (p.get("reply_parameters") or {}).get("message_id")
                == message_id]  # fmt: skip

    def field(self, job_id: str, name: str) -> bytes | None:
        """One field of the job's hash."""
        value: bytes | None = sync_redis().hget(f"rq:job:{job_id}", name)
        return value


@asynccontextmanager
async def rq_jobs(tg: FakeTelegram, url: str) -> AsyncIterator[RQJobs]:
    """:class:`RQJobs` on the queue at ``url``, its queue this process's for the block."""
    queue, source = RQQueue(url), RQSource(url)
    bot = Bot(tg.token, api_url=tg.api_url)
    use_queue(queue)
    try:
        yield RQJobs(tg, url, queue, source, bot)
    finally:
        use_queue(None)
        await bot.close()
        await source.close()
        await queue.close()
