"""The embedded job store: jobs in one SQLite file, taken by worker processes under leases.

One file is shared by several processes: the bot enqueues, N job workers take jobs. SQLite's
own locking keeps them apart (a claim is one ``BEGIN IMMEDIATE`` transaction; a writer waits
up to ``busy_timeout`` for another), so no process lock is taken, unlike the intake journal.

States::

    queued ──claim──▶ started ──finish──▶ finished
      ▲  │              │ │ └──fail, no retry left──▶ failed
      │  cancel         │ └──fail, retries left──▶ scheduled ──(run_at comes)──▶ claim
      │  ▼              │                            │
      │ canceled ◀──────┼──────────cancel────────────┘
      └───release───────┘

- **Leases.** :meth:`JobStore.claim` gives the job to one owner until ``lease_until``; the
  worker renews the lease while the job runs. A lease past its time stays the owner's until
  another claim takes the job: then that claim counts one *death* (the worker is presumed
  dead) and the job runs again. At :data:`MAX_DEATHS` (3) deaths the job is not run again: it
  is failed with the error ``"killed its worker 3 times"``.
- **Owners.** Only the lease owner may :meth:`~JobStore.renew`, :meth:`~JobStore.finish`,
  :meth:`~JobStore.fail` or :meth:`~JobStore.release` a job; anyone else gets ``False`` and
  changes nothing, so a worker that lost its lease cannot overwrite the new owner's run.
- **Replies.** :meth:`~JobStore.finish` records whether the job's reply was sent in the same
  transaction as the completion, so a finished job is never replied to again. (A worker
  killed after sending and before ``finish`` leaves the job started: it runs again, and
  replies again.) :meth:`~JobStore.unreplied` lists ended jobs whose reply is still owed,
  such as jobs failed at their last death; :meth:`~JobStore.mark_reply_sent` records one.
- **Fairness.** SQLite's busy wait is not fair: a process that claims in a tight loop can
  starve the others. A worker that finds nothing to claim should wait before it looks again.
  The store's own busy wait tries again after 50 µs, doubling up to 2 ms
  (:mod:`tgrunner._sqlite`); SQLite's sleeps whole milliseconds.
- **From an event loop.** :meth:`~JobStore.run` calls a method on the loop itself, without a
  thread (:mod:`tgrunner._sqlite`). The job worker does so: a thread hop costs more than most
  of the store's calls.
- **Retention.** Ended jobs stay, with their result or error, until :meth:`~JobStore.purge`
  deletes those past their TTL (RQ's defaults: 500 s for results, a year for failures).
- **Wake-ups.** A commit that makes a job runnable (enqueue, retry, release, a failure
  scheduled again) rings the file's doorbell (:mod:`tgrunner._doorbell`), waking the workers
  that wait for one; :meth:`~JobStore.next_due` says when a scheduled job or a lease comes due.
- **Sync.** ``synchronous=NORMAL``: every commit survives a process crash, not a power loss.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import orjson

from tgrunner._doorbell import Doorbell, wake_folder
from tgrunner._sqlite import Database
from tgrunner.errors import ConfigError

__all__ = [
    "DEATHS_ERROR",
    "FINAL_STATES",
    "MAX_DEATHS",
    "STATES",
    "JobRecord",
    "JobState",
    "JobStore",
    "NewJob",
    "new_job",
]

log = logging.getLogger(__name__)

R = TypeVar("R")

JobState = Literal["queued", "scheduled", "started", "finished", "failed", "canceled"]
STATES: tuple[JobState, ...] = ("queued", "scheduled", "started", "finished", "failed", "canceled")
"""Every state a job can be in."""
FINAL_STATES: frozenset[str] = frozenset({"finished", "failed", "canceled"})
"""States a job never leaves."""
MAX_DEATHS = 3
"""Lease expiries (while started) after which a job is failed instead of run again."""
DEATHS_ERROR = f"killed its worker {MAX_DEATHS} times"
"""The error of a job failed at its last death."""

_REPLY_KEYS = frozenset(
    {"chat_id", "message_id", "message_thread_id", "business_connection_id", "status_message_id"}
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    function TEXT NOT NULL,
    args BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL,
    timeout REAL,
    enqueued_at REAL NOT NULL,
    run_at REAL,
    lease_owner TEXT,
    lease_until REAL,
    result BLOB,
    error TEXT,
    reply_to BLOB,
    reply_sent INTEGER NOT NULL DEFAULT 0,
    deaths INTEGER NOT NULL DEFAULT 0,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_live ON jobs (seq)
    WHERE state IN ('queued', 'scheduled', 'started');
"""

# Runnable jobs, oldest first. The IN term, the partial index's own, lets SQLite scan only live
# jobs.
_RUNNABLE = (
    "SELECT seq, id, state, deaths FROM jobs "
    "WHERE state IN ('queued', 'scheduled', 'started') AND (state = 'queued' "
    "OR (state = 'scheduled' AND run_at <= ?) "
    "OR (state = 'started' AND lease_until < ?)) ORDER BY seq LIMIT 1"
)

_COLUMNS = (
    "id, function, args, state, attempts, max_retries, timeout, enqueued_at, run_at, "
    "lease_owner, lease_until, result, error, reply_to, reply_sent, deaths, ended_at"
)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as stored. Times are epoch seconds of the store's clock.

    - ``attempts``: runs that ended in :meth:`JobStore.fail`; ``max_retries``: how many of
      those are run again.
    - ``deaths``: leases that expired while the job was started (its worker presumed dead).
    - ``reply_to``: where the job's reply goes (``chat_id``, and optionally ``message_id``,
      ``message_thread_id``, ``business_connection_id`` and ``status_message_id``, the
      message to edit into the result), or None.
    """

    id: str
    function: str
    args: bytes
    state: JobState
    attempts: int
    max_retries: int
    timeout: float | None
    enqueued_at: float
    run_at: float | None
    lease_owner: str | None
    lease_until: float | None
    result: bytes | None
    error: str | None
    reply_to: dict[str, Any] | None
    reply_sent: bool
    deaths: int
    ended_at: float | None

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> JobRecord:
        values = list(row)
        values[13] = None if values[13] is None else orjson.loads(values[13])
        values[14] = bool(values[14])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to queue, checked by :func:`new_job`: its ``id``, ``function``, ``args``,
    ``retries``, ``timeout`` and ``reply`` (the serialised ``reply_to``, or None)."""

    id: str
    function: str
    args: bytes
    retries: int
    timeout: float | None
    reply: bytes | None


def new_job(
    function: str,
    args: bytes,
    *,
    retries: int = 0,
    timeout: float | None = None,
    reply_to: Mapping[str, Any] | None = None,
) -> NewJob:
    """A call of ``function`` (``"module:qualname"``) with ``args`` (the serialised arguments,
    opaque to the store), checked, with a new id (uuid4 hex); ConfigError when it is wrong.

    - ``retries``: times a failed run is run again (default 0).
    - ``timeout``: seconds a run may take, for the worker to enforce (default None: no limit).
    - ``reply_to``: where the reply goes: ``chat_id``, optionally ``message_id``,
      ``message_thread_id``, ``business_connection_id`` and ``status_message_id`` (default
      None: no reply).
    """
    if ":" not in function:
        raise ConfigError(
            f"job function {function!r} is not an import path: write 'module:qualname'"
        )
    if retries < 0:
        raise ConfigError(f"job retries must be 0 or more, not {retries}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"job timeout must be above 0 seconds (or None), not {timeout}")
    reply: bytes | None = None
    if reply_to is not None:
        unknown = set(reply_to) - _REPLY_KEYS
        if unknown or "chat_id" not in reply_to:
            raise ConfigError(
                f"reply_to needs chat_id and may have {sorted(_REPLY_KEYS)}; got {sorted(reply_to)}"
            )
        reply = orjson.dumps(dict(reply_to))
    return NewJob(uuid.uuid4().hex, function, args, retries, timeout, reply)


class JobStore:
    """Jobs in the SQLite file ``path`` (created with its schema when missing).

    - ``busy_timeout``: seconds a write waits for another process's transaction (default 10).
    - ``clock``: the time source for enqueue times, ``run_at`` and leases (default
      ``time.time``; tests pass a fake one). Every process on one file must share a clock.

    Methods are synchronous and thread-safe (one connection behind a lock); from an event
    loop, call them through ``asyncio.to_thread``, or :meth:`run` (no thread; a busy file is
    waited for with ``asyncio.sleep``).
    Raises :class:`~tgrunner.errors.ConfigError` when the file cannot be opened.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"Cannot open the job store {self.path}: its folder {self.path.parent} does "
                "not exist. Create it, or pass another path."
            )
        self._clock = clock
        self._found = False  # whether the last claim found a job
        try:
            self._db = Database(
                self.path, schema=_SCHEMA, busy_timeout=busy_timeout, name="the job store"
            )
        except sqlite3.Error as exc:
            raise ConfigError(
                f"Cannot open the job store {self.path}: {exc}. Pass a writable path, on a "
                "local disk (SQLite locking does not work over NFS)."
            ) from exc
        self._transaction = self._db.transaction
        self._read = self._db.read
        self._bell = Doorbell(wake_folder(self.path))

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        self._db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def run(self, method: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``method(*args, **kwargs)``, a method of this store, called on the running event
        loop without a thread: a busy file is waited for with ``asyncio.sleep`` (see
        :mod:`tgrunner._sqlite`). The job worker calls the store this way."""
        return await self._db.run(method, *args, **kwargs)

    # -- the bot's side -----------------------------------------------------------------------

    def enqueue(
        self,
        function: str,
        args: bytes,
        *,
        retries: int = 0,
        timeout: float | None = None,
        reply_to: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue a call of ``function`` with ``args`` (see :func:`new_job`); return the new
        job's id (uuid4 hex)."""
        job = new_job(function, args, retries=retries, timeout=timeout, reply_to=reply_to)
        self.enqueue_many([job])
        return job.id

    def enqueue_many(self, jobs: Sequence[NewJob]) -> None:
        """Queue ``jobs`` (from :func:`new_job`) in one transaction, in order: what a group
        commit of several enqueues writes."""
        now = self._clock()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO jobs (id, function, args, state, max_retries, timeout, "
                "enqueued_at, reply_to) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                [(j.id, j.function, j.args, j.retries, j.timeout, now, j.reply) for j in jobs],
            )
        self._bell.ring()

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or scheduled job; False when it is in any other state (or absent)."""
        with self._transaction() as db:
            n = db.execute(
                "UPDATE jobs SET state = 'canceled', run_at = NULL, ended_at = ? "
                "WHERE id = ? AND state IN ('queued', 'scheduled')",
                (self._clock(), job_id),
            ).rowcount
        return n == 1

    def purge(self, result_ttl: float = 500.0, failure_ttl: float = 31_536_000.0) -> int:
        """Delete finished jobs that ended more than ``result_ttl`` seconds ago (default 500,
        RQ's), and failed and canceled ones past ``failure_ttl`` (default one year, RQ's);
        return how many were deleted."""
        now = self._clock()
        with self._transaction() as db:
            n = db.execute(
                "DELETE FROM jobs WHERE (state = 'finished' AND ended_at < ?) "
                "OR (state IN ('failed', 'canceled') AND ended_at < ?)",
                (now - result_ttl, now - failure_ttl),
            ).rowcount
        return int(n)

    def retry(self, job_id: str) -> bool:
        """Queue a failed or canceled job again, as new: attempts, deaths, error and reply
        record cleared. False when it is in any other state (or absent)."""
        with self._transaction() as db:
            n = db.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, deaths = 0, error = NULL, "
                "result = NULL, reply_sent = 0, ended_at = NULL, run_at = NULL "
                "WHERE id = ? AND state IN ('failed', 'canceled')",
                (job_id,),
            ).rowcount
        if n == 1:
            self._bell.ring()
        return n == 1

    def listing(self, state: JobState, limit: int = 20) -> list[JobRecord]:
        """Jobs in ``state``, newest first, at most ``limit`` (default 20)."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT ?",
            (state, limit),
        )
        return [JobRecord._from_row(row) for row in rows]

    def unreplied(self, limit: int = 100) -> list[JobRecord]:
        """Ended jobs (finished or failed) with a ``reply_to`` whose reply is not recorded as
        sent, oldest first, at most ``limit`` (default 100): among them, jobs failed at their
        last death, whose failure message no worker sent."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN ('finished', 'failed') "
            "AND reply_to IS NOT NULL AND reply_sent = 0 ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [JobRecord._from_row(row) for row in rows]

    def mark_reply_sent(self, job_id: str) -> bool:
        """Record the reply of an ended job as sent; True only for the one call that did, so
        of several processes racing to send it, one wins. Call it before sending (at most one
        reply) or after (at least one), as the caller prefers."""
        with self._transaction() as db:
            n = db.execute(
                "UPDATE jobs SET reply_sent = 1 "
                "WHERE id = ? AND state IN ('finished', 'failed') AND reply_sent = 0",
                (job_id,),
            ).rowcount
        return n == 1

    def get(self, job_id: str) -> JobRecord | None:
        """The job with this id, or None."""
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return JobRecord._from_row(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state (every state is a key, 0 when none)."""
        found = dict(self._read("SELECT state, count(*) FROM jobs GROUP BY state"))
        return {state: int(found.get(state, 0)) for state in STATES}

    # -- the worker's side --------------------------------------------------------------------

    def claim(self, owner: str, lease_seconds: float = 5.0) -> JobRecord | None:
        """Take the oldest runnable job for ``owner`` with a lease of ``lease_seconds``
        (default 5), or return None when none is runnable.

        Runnable: queued; scheduled with ``run_at`` come; or started with its lease expired,
        which counts one death (at :data:`MAX_DEATHS`, the job is failed, not taken).
        """
        # A read first, unless the last claim found a job: finding nothing takes no write lock
        # (idle workers look often).
        now = self._clock()
        if not self._found and not self._read(_RUNNABLE, (now, now)):
            return None
        killed: list[str] = []  # logged once the transaction is committed
        retaken: tuple[str, int] | None = None
        claimed: JobRecord | None = None
        with self._transaction() as db:
            now = self._clock()
            while True:
                row = db.execute(_RUNNABLE, (now, now)).fetchone()
                if row is None:
                    break
                seq, job_id, state, deaths = row
                if state == "started":
                    deaths += 1
                    if deaths >= MAX_DEATHS:
                        db.execute(
                            "UPDATE jobs SET state = 'failed', deaths = ?, error = ?, "
                            "lease_owner = NULL, lease_until = NULL, ended_at = ? "
                            "WHERE seq = ?",
                            (deaths, DEATHS_ERROR, now, seq),
                        )
                        killed.append(job_id)
                        continue
                    retaken = (job_id, deaths)
                found = db.execute(
                    "UPDATE jobs SET state = 'started', deaths = ?, run_at = NULL, "
                    f"lease_owner = ?, lease_until = ? WHERE seq = ? RETURNING {_COLUMNS}",
                    (deaths, owner, now + lease_seconds, seq),
                )
                claimed = JobRecord._from_row(found.fetchall()[0])
                break
        self._found = claimed is not None
        for job_id in killed:
            log.error("job %s %s (its lease expired each time); failed", job_id, DEATHS_ERROR)
        if retaken is not None:
            log.warning(
                "job %s: its worker's lease expired (death %d of %d); running it again",
                *retaken,
                MAX_DEATHS,
            )
        return claimed

    def renew(self, job_id: str, owner: str, lease_seconds: float = 5.0) -> bool:
        """Extend ``owner``'s lease to ``lease_seconds`` (default 5) from now; False when the
        job is no longer started by ``owner`` (another worker took it, or it ended)."""
        with self._transaction() as db:
            n = db.execute(
                "UPDATE jobs SET lease_until = ? "
                "WHERE id = ? AND state = 'started' AND lease_owner = ?",
                (self._clock() + lease_seconds, job_id, owner),
            ).rowcount
        return n == 1

    def finish(self, job_id: str, owner: str, result: bytes | None, *, reply_sent: bool) -> bool:
        """End ``owner``'s run as finished with ``result`` (None: no result kept), recording
        ``reply_sent`` in the same transaction; False (and no change) when ``owner`` does not
        hold the job."""
        with self._transaction() as db:
            n = db.execute(
                "UPDATE jobs SET state = 'finished', result = ?, reply_sent = ?, "
                "lease_owner = NULL, lease_until = NULL, ended_at = ? "
                "WHERE id = ? AND state = 'started' AND lease_owner = ?",
                (result, reply_sent, self._clock(), job_id, owner),
            ).rowcount
        return n == 1

    def fail(
        self,
        job_id: str,
        owner: str,
        error: str,
        *,
        retry_delay: float | None,
        reply_sent: bool = False,
    ) -> bool:
        """End ``owner``'s run with ``error``. With retries left and a ``retry_delay`` (None:
        do not retry), the job is scheduled to run again ``retry_delay`` seconds from now;
        otherwise it is failed for good, with ``reply_sent`` (default False) recorded.
        False (and no change) when ``owner`` does not hold the job."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT seq, attempts, max_retries FROM jobs "
                "WHERE id = ? AND state = 'started' AND lease_owner = ?",
                (job_id, owner),
            ).fetchone()
            if row is None:
                return False
            seq, attempts, max_retries = row
            now = self._clock()
            scheduled = retry_delay is not None and attempts < max_retries
            if scheduled:
                db.execute(
                    "UPDATE jobs SET state = 'scheduled', attempts = attempts + 1, error = ?, "
                    "run_at = ?, lease_owner = NULL, lease_until = NULL WHERE seq = ?",
                    (error, now + (retry_delay or 0.0), seq),
                )
            else:
                db.execute(
                    "UPDATE jobs SET state = 'failed', attempts = attempts + 1, error = ?, "
                    "reply_sent = ?, ended_at = ?, lease_owner = NULL, lease_until = NULL "
                    "WHERE seq = ?",
                    (error, reply_sent, now, seq),
                )
        if scheduled:
            self._bell.ring()  # waiting workers learn its run_at
        return True

    def release(self, job_id: str, owner: str) -> bool:
        """Give ``owner``'s unfinished job back to the queue at once (a clean stop), with no
        death or attempt counted; False when ``owner`` does not hold it."""
        with self._transaction() as db:
            n = db.execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND state = 'started' AND lease_owner = ?",
                (job_id, owner),
            ).rowcount
        if n == 1:
            self._bell.ring()
        return n == 1

    def set_status_message(self, job_id: str, owner: str, message_id: int) -> bool:
        """Record ``message_id`` as the status message of ``owner``'s started job (its
        ``reply_to["status_message_id"]``), so that a later run edits the same message; False
        (and no change) when ``owner`` does not hold the job or it has no ``reply_to``."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT seq, reply_to FROM jobs "
                "WHERE id = ? AND state = 'started' AND lease_owner = ?",
                (job_id, owner),
            ).fetchone()
            if row is None or row[1] is None:
                return False
            target = orjson.loads(row[1])
            target["status_message_id"] = message_id
            db.execute("UPDATE jobs SET reply_to = ? WHERE seq = ?", (orjson.dumps(target), row[0]))
        return True

    def next_due(self) -> float | None:
        """When the next job becomes runnable, on the store's clock: now or earlier when one
        is queued or due; else the earliest ``run_at`` of a scheduled job or ``lease_until`` of
        a started one (taken again if its worker does not renew); None when no job is live."""
        rows = self._read(
            "SELECT min(CASE state WHEN 'queued' THEN 0 WHEN 'scheduled' THEN run_at "
            "ELSE lease_until END) FROM jobs WHERE state IN ('queued', 'scheduled', 'started')"
        )
        due = rows[0][0] if rows else None
        return None if due is None else float(due)
