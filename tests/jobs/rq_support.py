"""Shared by the RQ backend's tests: a queue of its own on the real Redis, removed afterwards.

Each test gets a fresh queue name in DB 12, so tests never see each other's jobs, and only
the keys of that queue and of its jobs are deleted when it ends (never the whole database).
A plain module, not a conftest: a second conftest would shadow the root one's
``need_service``.
"""

from __future__ import annotations

import pickle
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import redis

from conftest import need_service
from tgrunner.jobs.backends._rq_common import QueueKeys
from tgrunner.jobs.queue import JobRequest

__all__ = ["DB", "cleanup", "closed_port", "fresh_queue", "queue_name", "request", "sync_redis"]

DB = 12


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
            doomed += [keys.job + job_id.decode(), keys.results + job_id.decode()]
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
    need_service("redis")
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
