"""RQ over Valkey/Redis, the bot's side: ``--jobs redis://127.0.0.1:6379/0``.

Jobs are real RQ jobs in the RQ queue ``tgrunner`` (``?queue=NAME`` names another), so
``rq info`` and rq-dashboard see them: queued in ``rq:queue:NAME``, started in RQ's started
registry, then in its finished, failed, scheduled and canceled registries, with RQ's Result
stream. They run on ``tgrunner worker MODULE --jobs URL``
(:class:`~tgrunner.jobs.backends.rq_source.RQSource`, leases renewed every 2 s, a dead
worker's job back within seconds), or on a plain ``rq worker NAME``.

**What an RQ job of tgrunner's runs.** Its function is the entry
:func:`tgrunner.jobs.backends.rq_entry.perform`, called with the task's path and its pickled
arguments, not the task itself. The trade-off:

- a plain ``rq worker`` then runs the task *and* sends its reply, through the Bot API, with
  the token of ``TGRUNNER_TOKEN``/``BOT_TOKEN``; it records the reply as sent (the
  ``tgrunner_reply_sent`` field) before RQ records the end, and a run that finds it recorded
  does not run again, so a retry after a kill does not reply twice;
- a task that takes a JobContext gets one, and the last failure sends the failure message;
- rq-dashboard still reads well: the job's ``description`` is the task's call
  (``bot.render('a cat')``), though its ``func_name`` is the entry's.

Naming the task itself, with RQ's success and failure callbacks sending the reply, would show
the task as ``func_name``, but a plain worker would call it without its JobContext, call the
failure callback at every failed run, not only the last, and record the reply in a write of
its own, after RQ's.

**Options** are in the URL's query (see
:class:`~tgrunner.jobs.backends._rq_common.RQOptions`): ``queue``, ``retry_for`` (seconds an
unreachable Redis is retried, default 10, then
:class:`~tgrunner.errors.QueueUnavailable`), ``result_ttl`` and ``failure_ttl`` (default RQ's:
500 s and a year).

Calls are async (redis.asyncio), one Lua script or one pipeline each: an enqueue is one round
trip, against three of RQ's own ``Queue.enqueue`` run in a thread.
"""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from pathlib import Path
from typing import Any, cast

from tgrunner.errors import ConfigError, QueueUnavailable
from tgrunner.jobs.backends import _rq_scripts as lua
from tgrunner.jobs.backends._rq_common import (
    UNREACHABLE,
    Outage,
    QueueKeys,
    RQOptions,
    connect,
    info_of,
    job_fields,
    retrying,
)
from tgrunner.jobs.backends.rq_source import RQSource
from tgrunner.jobs.queue import JobInfo, JobRequest
from tgrunner.jobs.store import STATES, JobState

__all__ = ["RQQueue", "RQSource"]  # RQSource lives in rq_source; both sides import from here

_BATCH = 200  # enqueues in one pipeline at most

_REGISTRY_OF = {
    "started": 1,
    "scheduled": 2,
    "failed": 4,
    "finished": 5,
    "canceled": 6,
}  # index in QueueKeys.all


class RQQueue:
    """The RQ queue that ``url`` names (``redis://``, ``rediss://`` or ``unix://``; see the
    module doc for its options); ``path`` is unused (the embedded backend's). ``url`` is
    kept with its password hidden. Nothing connects until the first call."""

    def __init__(self, url: str, path: Path | None = None) -> None:
        self.options = RQOptions.from_url(url)
        self.url = self.options.safe_url
        self.keys = QueueKeys(self.options.queue)
        self._redis = connect(self.options)
        self._outage = Outage(self.url)
        self._enqueue = self._redis.register_script(lua.ENQUEUE)
        self._cancel = self._redis.register_script(lua.CANCEL)
        self._retry = self._redis.register_script(lua.RETRY)
        self._batch: list[tuple[list[Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<RQQueue {self.url} queue={self.options.queue!r}>"

    async def _run(self, script: Any, what: str, *args: Any) -> Any:
        keys = self.keys
        return await retrying(
            lambda: script(keys=keys.all, args=[*keys.prelude("tgrunner"), *args]),
            outage=self._outage,
            seconds=self.options.retry_for,
            what=what,
        )

    async def enqueue(self, request: JobRequest) -> str:
        """Queue the job as an RQ job and return its id. While Redis is unreachable, retried
        with backoff for ``retry_for`` seconds, then QueueUnavailable. The job is written
        whole or not at all (one script), and a retry after a lost answer does not queue it
        twice. Enqueues made at once (by concurrent handlers) go in one pipeline: one round
        trip for all of them."""
        job_id = uuid.uuid4().hex
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append(([job_id, *job_fields(job_id, request, self.options)], done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done
        return job_id

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the enqueues of this turn of the loop join the batch
        while self._batch:
            batch, self._batch = self._batch[:_BATCH], self._batch[_BATCH:]
            calls = [args for args, _ in batch]
            try:
                answers = await retrying(
                    partial(self._send, calls),
                    outage=self._outage,
                    seconds=self.options.retry_for,
                    what="queueing a job",
                )
            except BaseException as exc:  # every enqueue of the batch gets the error
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, done), answer in zip(batch, answers, strict=True):
                if done.done():
                    continue
                if isinstance(answer, Exception):
                    done.set_exception(answer)
                else:
                    done.set_result(None)

    async def _send(self, batch: list[list[Any]]) -> list[Any]:
        keys = self.keys
        prelude = keys.prelude("tgrunner")
        if len(batch) == 1:
            return [await self._enqueue(keys=keys.all, args=[*prelude, *batch[0]])]
        async with self._redis.pipeline(transaction=False) as pipe:
            for args in batch:
                await self._enqueue(keys=keys.all, args=[*prelude, *args], client=pipe)
            return list(await pipe.execute(raise_on_error=False))

    async def _fetch(self, ids: list[str]) -> list[JobInfo]:
        if not ids:
            return []

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hgetall(self.keys.job + job_id)
                    pipe.xrevrange(self.keys.results + job_id, count=1)
                return list(await pipe.execute())

        found = await retrying(
            read, outage=self._outage, seconds=self.options.retry_for, what="reading jobs"
        )
        return [
            info_of(job_id, found[2 * i], found[2 * i + 1])
            for i, job_id in enumerate(ids)
            if found[2 * i]
        ]

    async def info(self, job_id: str) -> JobInfo | None:
        jobs = await self._fetch([job_id])
        return jobs[0] if jobs else None

    async def cancel(self, job_id: str) -> bool:
        return bool(await self._run(self._cancel, "canceling a job", job_id, uuid.uuid4().hex))

    async def retry(self, job_id: str) -> bool:
        return bool(await self._run(self._retry, "retrying a job", job_id, uuid.uuid4().hex))

    async def counts(self) -> dict[str, int]:
        """Jobs per state from RQ's queue and registries: queued is the queue's length
        (ids of canceled jobs included until a worker drops them), scheduled counts jobs
        waiting on a dependency too, finished and failed count those not past their TTL."""
        keys = self.keys.all

        async def read() -> list[Any]:
            now = await self._redis.time()
            stamp = now[0] + now[1] / 1e6
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.llen(keys[0])
                pipe.zcard(keys[1])
                pipe.zcard(keys[2])
                pipe.zcard(self.keys.deferred)
                pipe.zcount(keys[5], stamp, "+inf")
                pipe.zcount(keys[4], stamp, "+inf")
                pipe.zcard(keys[6])
                return list(await pipe.execute())

        queued, started, scheduled, deferred, finished, failed, canceled = await retrying(
            read, outage=self._outage, seconds=self.options.retry_for, what="counting jobs"
        )
        return {
            "queued": queued,
            "scheduled": scheduled + deferred,
            "started": started,
            "finished": finished,
            "failed": failed,
            "canceled": canceled,
        }

    async def listing(self, state: JobState, limit: int = 20) -> list[JobInfo]:
        """Jobs in ``state``, newest first (the queue's tail first; a registry's highest
        score first), at most ``limit``."""
        if state not in STATES:
            raise ConfigError(f"no job state {state!r}: one of {', '.join(STATES)}")
        if limit <= 0:
            return []

        async def read() -> list[bytes]:
            if state == "queued":
                tail = await self._redis.lrange(self.keys.queue, -limit, -1)
                return cast(list[bytes], tail[::-1])
            key = self.keys.all[_REGISTRY_OF[state]]
            return cast(list[bytes], await self._redis.zrevrange(key, 0, limit - 1))

        raw = await retrying(
            read, outage=self._outage, seconds=self.options.retry_for, what="listing jobs"
        )
        # The started registry holds JOB:EXECUTION; a queue may hold an id twice.
        ids = list(dict.fromkeys(entry.decode().partition(":")[0] for entry in raw))
        return [job for job in await self._fetch(ids) if job.state == state]

    async def check(self) -> None:
        """One PING, no retry: QueueUnavailable at once when Redis does not answer."""
        try:
            await self._redis.ping()
        except UNREACHABLE as exc:
            raise QueueUnavailable(
                f"the job queue {self.url} does not answer ({type(exc).__name__}: {exc})"
            ) from None

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._redis.aclose()
