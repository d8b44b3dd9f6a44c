"""RQ over Valkey/Redis, the worker's side: a :class:`~tgrunner.jobs.source.JobSource` on
the RQ queue of ``--jobs redis://...`` (``tgrunner worker MODULE --jobs URL``).

Each step is one Lua script (:mod:`~tgrunner.jobs.backends._rq_scripts`) that leaves RQ's keys
as RQ would, so ``rq info`` and rq-dashboard follow the jobs:

- **Claim** pops the next id off RQ's queue list and, in the same step, sets the job started,
  puts it in RQ's started registry (``rq:wip:NAME``, as ``JOB:EXECUTION``) and gives it a
  lease in tgrunner's own sorted set. There is no moment when a job is off the queue and not
  started, the window in which RQ's own workers orphan a job (``BLMOVE`` to an intermediate
  list, then a second step). Ids of jobs that are no longer queued (canceled, or queued twice)
  are dropped; a job that tgrunner did not queue is failed, saying so.
- **Leases.** The worker renews its lease (5 s, every 2 s). A claim or a renewal by any
  worker finds leases that ran out while their job was started: a *death*; the job goes back
  to the head of the queue at once, and at the third death it is failed with
  ``"killed its worker 3 times"``, its failure message owed (:meth:`RQSource.unreplied`).
  RQ's started registry scores the job a minute past its lease, so RQ's own cleanup (which
  ``rq info`` runs) leaves it to tgrunner's workers.
- **Retries** go to RQ's scheduled registry (``rq:scheduled:NAME``) with their backoff; each
  claim moves the jobs that are due back to the queue, as RQ's scheduler would (a plain
  ``rq worker --with-scheduler`` does the same).
- **Finish / fail** write the end as RQ's workers do (status, registry, a Result in
  ``rq:results:ID``, the TTLs) and ``reply_sent`` in the same script. **Release** puts the
  job back at the head of the queue, nothing counted.
- **Wait** blocks on ``BLMOVE NAME NAME LEFT LEFT`` (it returns as soon as the queue is not
  empty, and moves nothing), for at most the time until the next lease or retry is due: no
  polling.
- **Redis unreachable.** A claim returns None and the next wait sleeps with backoff (to 2 s);
  renewals retry for one lease, other writes for ``?retry_for=`` seconds (default 10), then
  raise :class:`~tgrunner.errors.QueueUnavailable`. One log line says Redis is unreachable,
  one that it answers again. A call whose answer was lost is retried with the same token, and
  the script answers it as it did the first time.

Needs Redis 6.2 or later, or Valkey (``BLMOVE``). Jobs that a plain ``rq worker`` runs are
its own: RQ's heartbeat and maintenance, not these leases, look after them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from pathlib import Path
from typing import Any, cast

from tgrunner.errors import ConfigError
from tgrunner.jobs.backends import _rq_scripts as lua
from tgrunner.jobs.backends._rq_common import (
    FAILURE_TTL,
    LEASE_GRACE,
    UNREACHABLE,
    Outage,
    QueueKeys,
    RQOptions,
    b64z,
    claim_of,
    connect,
    retrying,
)
from tgrunner.jobs.source import Claim
from tgrunner.jobs.store import DEATHS_ERROR, MAX_DEATHS

__all__ = ["FOREIGN_ERROR", "RQSource"]

log = logging.getLogger("tgrunner.jobs.rq")

FOREIGN_ERROR = (
    "not a tgrunner job: a tgrunner worker runs only what tgrunner queued (@tgrunner.jobs.task); "
    "run this one on a plain rq worker, from another queue"
)
"""The error of a job in the queue that tgrunner did not queue."""

_MAX_BACKOFF = 2.0


class RQSource:
    """The worker's side of the RQ queue that ``url`` names (see
    :class:`~tgrunner.jobs.backends._rq_common.RQOptions` for the URL's options; ``path`` is
    unused). Nothing connects until the first call."""

    def __init__(self, url: str, path: Path | None = None) -> None:
        self.options = RQOptions.from_url(url)
        self.url = self.options.safe_url
        self.keys = QueueKeys(self.options.queue)
        self._redis = connect(self.options)
        self._blocking = connect(self.options, blocking=True)
        self._outage = Outage(self.url)
        register = self._redis.register_script
        self._claim = register(lua.CLAIM)
        self._renew = register(lua.RENEW)
        self._finish = register(lua.FINISH)
        self._fail = register(lua.FAIL)
        self._release = register(lua.RELEASE)
        self._status = register(lua.STATUS_MESSAGE)
        self._mark = register(lua.MARK_REPLY_SENT)
        self._purge = register(lua.PURGE)
        line, packed, encoded = DEATHS_ERROR, *b64z(DEATHS_ERROR)
        self._deaths: list[Any] = [MAX_DEATHS, line, packed, encoded]
        self._foreign: list[Any] = [FOREIGN_ERROR, *b64z(FOREIGN_ERROR)]
        self._checked = False
        self._next_due: float | None = None  # monotonic time the next lease or retry is due
        self._more = False  # the last claim left jobs in the queue
        self._backoff = 0.0  # > 0 while Redis is unreachable
        self._waiting: asyncio.Future[None] | None = None
        self._pending: dict[str, str] = {}  # owner -> token of a claim whose answer was lost

    def __repr__(self) -> str:
        return f"<RQSource {self.url} queue={self.options.queue!r}>"

    # -- helpers ------------------------------------------------------------------------------

    async def _write(self, script: Any, what: str, seconds: float, owner: str, *args: Any) -> Any:
        keys = self.keys
        return await retrying(
            lambda: script(keys=keys.all, args=[*keys.prelude(owner), *args]),
            outage=self._outage,
            seconds=seconds,
            what=what,
        )

    def _unreachable(self, exc: BaseException) -> None:
        self._outage.failed(exc)
        self._backoff = min(max(self._backoff * 2, 0.05), _MAX_BACKOFF)

    def _report(self, events: list[bytes]) -> None:
        for event in events:
            job_id, deaths, what = event.decode().split(" ")
            if what == "queued":
                log.warning(
                    "job %s: its worker's lease expired (death %s of %d); queued again",
                    job_id,
                    deaths,
                    MAX_DEATHS,
                )
            elif what == "failed":
                log.error("job %s %s (its lease expired each time); failed", job_id, DEATHS_ERROR)
            else:
                log.error("job %s in %s: %s; failed", job_id, self.keys.queue, FOREIGN_ERROR)

    async def _check_server(self) -> None:
        info = await self._redis.info("server")
        version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
        if version < (6, 2):
            raise ConfigError(
                f"the job queue {self.url} runs Redis {info.get('redis_version')}: tgrunner's "
                "RQ workers need Redis 6.2 or later, or Valkey (for BLMOVE)"
            )
        self._checked = True

    # -- JobSource ----------------------------------------------------------------------------

    async def claim(self, owner: str, lease: float) -> Claim | None:
        """The next job, now ``owner``'s for ``lease`` seconds; None when there is none, or
        while Redis is unreachable (the next :meth:`wait` then backs off)."""
        token = self._pending.pop(owner, None) or uuid.uuid4().hex
        keys = self.keys
        args = [
            *keys.prelude(owner),
            *self._deaths,
            owner,
            repr(float(lease)),
            token,
            keys.claims,
            LEASE_GRACE,
            *self._foreign,
        ]
        try:
            if not self._checked:
                await self._check_server()
            taken, fields, due, events, more = await self._claim(keys=keys.all, args=args)
        except UNREACHABLE as exc:
            self._pending[owner] = token  # the claim may have gone through: ask again
            self._unreachable(exc)
            return None
        self._outage.answered()
        self._backoff = 0.0
        self._report(events)
        self._next_due = time.monotonic() + float(due) if due else None
        self._more = bool(more)
        if not taken:
            return None
        job_id = taken.decode()
        try:
            return claim_of(job_id, fields)
        except Exception as exc:  # a hash written by something else than tgrunner
            await self.fail(
                job_id,
                owner,
                f"cannot read the job's data ({type(exc).__name__}: {exc})",
                retry_delay=None,
                reply_sent=False,
            )
            self._more = True
            return None

    async def wait(self, timeout: float) -> None:
        """Return when the queue is not empty, when the next lease or retry is due, or after
        ``timeout`` seconds, whichever comes first. Waits of several slots share one
        ``BLMOVE`` (on a connection of its own)."""
        if self._backoff:
            await asyncio.sleep(min(timeout, self._backoff))
            return
        if self._more:
            self._more = False
            return
        limit = timeout
        if self._next_due is not None:
            limit = min(limit, self._next_due - time.monotonic())
        if limit <= 0.001:
            return
        waiting = self._waiting
        if waiting is None or waiting.done():
            waiting = self._waiting = asyncio.ensure_future(self._block(limit))
        await asyncio.wait([waiting], timeout=limit)

    async def _block(self, seconds: float) -> None:
        queue = self.keys.queue
        try:
            # Redis takes a timeout in seconds with decimals; redis-py's hint says int.
            wait: Any = round(max(seconds, 0.01), 3)
            await self._blocking.blmove(queue, queue, wait, "LEFT", "LEFT")
        except UNREACHABLE as exc:
            self._unreachable(exc)

    async def renew(self, job_id: str, owner: str, lease: float) -> bool:
        """Extend ``owner``'s lease to ``lease`` seconds from now; False when the job is no
        longer ``owner``'s. Retried for ``lease`` seconds while Redis is unreachable."""
        ok, events = await self._write(
            self._renew,
            "renewing a job's lease",
            lease,
            owner,
            *self._deaths,
            owner,
            repr(float(lease)),
            job_id,
            LEASE_GRACE,
        )
        self._report(events)
        return bool(ok)

    async def finish(
        self, job_id: str, owner: str, result: bytes | None, *, reply_sent: bool
    ) -> bool:
        encoded = "" if result is None else base64.b64encode(result).decode()
        token = uuid.uuid4().hex
        done = await self._write(
            self._finish,
            "recording a job's end",
            self.options.retry_for,
            owner,
            owner,
            job_id,
            token,
            encoded,
            int(reply_sent),
        )
        return bool(done)

    async def fail(
        self, job_id: str, owner: str, error: str, *, retry_delay: float | None, reply_sent: bool
    ) -> bool:
        packed, encoded = b64z(error)
        delay = "" if retry_delay is None else repr(max(0.0, float(retry_delay)))
        token = uuid.uuid4().hex
        code = await self._write(
            self._fail,
            "recording a job's failure",
            self.options.retry_for,
            owner,
            owner,
            job_id,
            token,
            error,
            packed,
            encoded,
            delay,
            int(reply_sent),
        )
        return bool(code)

    async def release(self, job_id: str, owner: str) -> bool:
        token = uuid.uuid4().hex
        done = await self._write(
            self._release,
            "releasing a job",
            self.options.retry_for,
            owner,
            owner,
            job_id,
            token,
        )
        return bool(done)

    async def set_status_message(self, job_id: str, owner: str, message_id: int) -> bool:
        done = await self._write(
            self._status,
            "recording a status message",
            self.options.retry_for,
            owner,
            owner,
            job_id,
            int(message_id),
        )
        return bool(done)

    async def unreplied(self, limit: int = 100) -> list[Claim]:
        """Ended jobs whose reply (or failure message) is owed, oldest first: among them, jobs
        failed at their third death."""
        key = self.keys.all[7]
        fields = ("status", "tgrunner_reply_sent", *lua.CLAIM_FIELDS)

        async def read() -> tuple[list[bytes], list[Any]]:
            ids = cast(list[bytes], await self._redis.zrange(key, 0, max(limit, 1) - 1))
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hmget(self.keys.job + job_id.decode(), fields)
                return ids, list(await pipe.execute())

        ids, rows = await retrying(
            read,
            outage=self._outage,
            seconds=self.options.retry_for,
            what="reading unreplied jobs",
        )
        owed: list[Claim] = []
        stale: list[bytes] = []
        for raw, values in zip(ids, rows, strict=True):
            status, sent, *rest = values
            if status not in (b"finished", b"failed") or sent == b"1":
                stale.append(raw)
                continue
            try:
                owed.append(claim_of(raw.decode(), rest))
            except Exception:
                stale.append(raw)
        if stale:
            await self._redis.zrem(key, *stale)
        return owed

    async def mark_reply_sent(self, job_id: str) -> bool:
        token = uuid.uuid4().hex
        done = await self._write(
            self._mark, "recording a reply", self.options.retry_for, "tgrunner", job_id, token
        )
        return bool(done)

    async def purge(self) -> int:
        """Drop registry entries past their TTL (the jobs' own keys expire by themselves) and
        entries of the unreplied set whose job is gone; how many."""
        removed = await self._write(
            self._purge, "purging", self.options.retry_for, "tgrunner", FAILURE_TTL
        )
        return int(removed)

    async def close(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()
            await asyncio.gather(self._waiting, return_exceptions=True)
        await self._blocking.aclose()
        await self._redis.aclose()
