"""The durable intake journal: an update is written here before Telegram is told to forget it.

Every source writes to the same journal, owned by the runtime. Once a batch is in the journal
its offset (polling) or its 200 (webhook) may be sent: a crash at any point, SIGKILL included,
means the update is handled again on the next start, never lost. What was in flight, plus the
finish marks of the last ``FLUSH_DELAY`` seconds, is handled again.

The file is SQLite in WAL mode, one row per unfinished update, in arrival order (``seq``), so
update ids that restart lower (Telegram does so after a quiet week) still replay in the order
they came. ``seq`` is a plain rowid, not AUTOINCREMENT: a new row gets one above every row left,
which is all the order needs, and each insert skips a write to ``sqlite_sequence``.

- **Finish marks** are gathered and written in one small transaction at most ``FLUSH_DELAY``
  (50 ms) after the first of them, so they reach disk within 100 ms even when the bot is idle.
- **Attempts.** When a handler starts, its update's attempt count is raised, durably, before
  the handler's first step runs (one transaction for all the starts of one loop iteration).
  An update that is still unfinished after ``MAX_ATTEMPTS`` (3) starts has killed its process
  that many times: opening the journal moves it to the quarantine table, with an error log
  line, and it is not replayed. ``tgrunner journal list|retry|drop`` inspects and releases it.
  A clean stop gives back the attempts of handlers it had to cancel. So that an update that
  merely ran beside the culprit is not blamed, the runtime replays *suspects* (updates started
  before) one at a time, each finish mark written at once (:meth:`suspects`,
  ``finished(now=True)``). With worker processes, an update that kills its *worker* 3 times
  is quarantined at once by the runtime (:meth:`set_aside`), the supervisor living on; no
  start marks are written then, since a handler cannot crash the supervisor.
- **One process.** An exclusive ``flock`` on ``<path>.lock``, taken before anything is read,
  refuses a second process on the same journal.
- **Sync.** ``synchronous=NORMAL`` (default) survives a process crash, not a power loss.
  ``sync="full"`` adds an fsync to each commit: then every write runs on one writer thread, so
  the fsync never blocks the event loop.

With ``sync="normal"`` writes run on the event loop's thread: a batch insert costs well under a
millisecond, less than a thread hop. The WAL checkpoint, which syncs files, runs on a
connection of its own in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from tgrunner.errors import ConfigError

__all__ = ["FLUSH_DELAY", "MAX_ATTEMPTS", "SEEN_WINDOW", "Journal", "Quarantined"]

log = logging.getLogger(__name__)

T = TypeVar("T")

FLUSH_DELAY = 0.05
"""Seconds between the first finish mark of a group and its write: half the 100 ms bound."""
MAX_ATTEMPTS = 3
"""Starts after which an unfinished update is quarantined instead of replayed."""
SEEN_WINDOW = 100_000
"""Finished update ids remembered (in memory) to drop an unordered source's resends."""
# Journal batches between WAL checkpoints.
_CHECKPOINT_EVERY = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intake (
    seq INTEGER PRIMARY KEY,
    update_id INTEGER NOT NULL UNIQUE,
    attempts INTEGER NOT NULL DEFAULT 0,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    update_id INTEGER PRIMARY KEY,
    attempts INTEGER NOT NULL,
    since REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An update set aside after killing its process ``attempts`` times (``since``: epoch s)."""

    update_id: int
    attempts: int
    since: float
    update: dict[str, Any]


def _lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"Cannot open the journal lock {lock_path}: {exc.strerror}. Pass a writable "
            "--data-dir or --journal path."
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise ConfigError(
            f"Another process (pid {holder}) is running this bot on {path}. Stop it first, or "
            "give this one its own --data-dir."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _connect(path: Path, sync: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync.upper()}")
    # Checkpoints sync files; they run in checkpoint(), off the event loop.
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One explicit transaction (in autocommit mode executemany would commit once per row)."""
    db.execute("BEGIN")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        # SQLite ends the transaction itself on some errors (SQLITE_FULL, SQLITE_IOERR): a
        # ROLLBACK then fails, and its error would hide the one that matters.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a version-1 journal (update_id primary key, no attempts) to this schema."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(intake)")}
    if not columns or "seq" in columns:
        return
    table = _SCHEMA.split(";")[0]
    db.executescript(
        "BEGIN; ALTER TABLE intake RENAME TO intake_v1; "
        f"{table}; "
        "INSERT INTO intake (update_id, body) SELECT update_id, body FROM intake_v1 "
        "ORDER BY update_id; DROP TABLE intake_v1; COMMIT;"
    )


class Journal:
    """Unfinished updates of one bot, on disk.

    - ``path``: the SQLite file. Its folder must exist (the runtime creates the data dir).
    - ``bot_id``: the bot it belongs to; opening another bot's journal is refused.
    - ``sync``: ``"normal"`` (default: survives a process crash) or ``"full"`` (also power
      loss, at an fsync per commit, on a writer thread).
    - ``on_error(exc)``: called when a background write (finish marks) fails; default: log.

    Raises :class:`~tgrunner.errors.ConfigError` when the file cannot be opened, belongs to
    another bot, or is locked by another process.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        bot_id: int,
        sync: str = "normal",
        on_error: Callable[[BaseException], Any] | None = None,
    ) -> None:
        if sync not in ("normal", "full"):
            raise ConfigError(f"journal sync must be 'normal' or 'full', not {sync!r}")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"Cannot open the intake journal {self.path}: its folder {self.path.parent} "
                "does not exist. Create it, or pass another path."
            )
        self._lock_fd = _lock(self.path)
        try:
            self._db = _connect(self.path, sync)
            _migrate(self._db)
            self._db.executescript(_SCHEMA)
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.Error, OSError) as exc:
            os.close(self._lock_fd)
            raise ConfigError(
                f"Cannot open the intake journal {self.path}: {exc}. Pass a writable path."
            ) from exc
        owner = meta.get("bot_id")
        if owner is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('bot_id', ?)", (bot_id,))
        elif owner != bot_id:
            self._db.close()
            os.close(self._lock_fd)
            raise ConfigError(
                f"The intake journal {self.path} belongs to bot {owner}, not {bot_id}. "
                "Give each bot its own journal path or data dir."
            )
        self._highest: int = meta.get("highest", -1)
        self._sync = sync.upper()
        self._on_error = on_error
        self._finished: list[tuple[int]] = []
        self._started: list[tuple[int]] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._start_flush_due = False
        self._writer = ThreadPoolExecutor(1, "tgrunner-journal") if sync == "full" else None
        self._last_write: asyncio.Future[Any] | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        self._writes_since_checkpoint = 0
        # Unordered puts only (a webhook): the ids held here, and the last finished ones.
        self._live: set[int] | None = None
        self._recent: deque[int] = deque()
        self._recent_ids: set[int] = set()
        self.quarantined_now: list[int] = self._quarantine_repeat_offenders()

    # -- reading ------------------------------------------------------------------------------

    durable = True

    @property
    def offset(self) -> int:
        """The offset Telegram may be given: one past :attr:`highest` (-1 when none)."""
        return self._highest + 1 if self._highest >= 0 else -1

    @property
    def highest(self) -> int:
        """The highest update_id journaled in the current id sequence (-1 when none)."""
        return self._highest

    @property
    def pending(self) -> int:
        """Rows still in the journal (unfinished, or finished but not yet flushed)."""
        return int(self._db.execute("SELECT count(*) FROM intake").fetchone()[0])

    @property
    def quarantined_count(self) -> int:
        """Updates in the quarantine table (set aside, never replayed)."""
        return int(self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    @property
    def is_open(self) -> bool:
        """Whether the journal is open (False once closed)."""
        return self._db is not None

    def unfinished(self) -> list[dict[str, Any]]:
        """Updates journaled and not finished, in arrival order (replay them first)."""
        rows = self._db.execute("SELECT body FROM intake ORDER BY seq").fetchall()
        return [orjson.loads(body) for (body,) in rows]

    def suspects(self) -> set[int]:
        """Unfinished updates that were already started once: a crash may have been theirs."""
        rows = self._db.execute("SELECT update_id FROM intake WHERE attempts > 0")
        return {uid for (uid,) in rows}

    def get(self, update_id: int) -> dict[str, Any] | None:
        """The journaled update with this id, or None when it is not (or no longer) here."""
        row = self._db.execute("SELECT body FROM intake WHERE update_id = ?", (update_id,))
        found = row.fetchone()
        return None if found is None else orjson.loads(found[0])

    def quarantine(self) -> list[Quarantined]:
        """Updates set aside after killing their process, oldest first."""
        rows = self._db.execute(
            "SELECT update_id, attempts, since, body FROM quarantine ORDER BY since, update_id"
        )
        return [Quarantined(uid, n, since, orjson.loads(body)) for uid, n, since, body in rows]

    # -- writing ------------------------------------------------------------------------------

    async def put(
        self, updates: Sequence[dict[str, Any]], *, ordered: bool = True
    ) -> list[dict[str, Any]]:
        """Write new updates durably in one transaction; return those not journaled before.

        - ``ordered`` (default, polling): ids only grow, so updates at or below
          :attr:`highest` are skipped (already journaled); call :meth:`restart_ids` first
          when the ids restarted lower.
        - ``ordered=False`` (a webhook: ids of different chats arrive in any order, and
          Telegram resends an update whose answer it missed): an update is skipped when it
          is still here, unfinished, or quarantined, or among the last :data:`SEEN_WINDOW`
          finished since this journal was opened (a resend of one finished before a restart
          is taken again).
        """
        if ordered:
            fresh = [u for u in updates if u["update_id"] > self._highest]
        else:
            fresh = self._unseen(updates)
        if not fresh:
            return fresh
        if ordered:
            highest = fresh[-1]["update_id"]
        else:
            highest = max(self._highest, max(u["update_id"] for u in fresh))
        rows = [(u["update_id"], orjson.dumps(u)) for u in fresh]
        await self._write(self._insert, rows, highest)
        self._highest = highest
        self._writes_since_checkpoint += 1
        if self._writes_since_checkpoint >= _CHECKPOINT_EVERY and self._checkpoint is None:
            self._start_checkpoint()
        return fresh

    def _unseen(self, updates: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        live = self._live
        if live is None:  # what is here, and what was set aside: neither is new
            rows = self._db.execute(
                "SELECT update_id FROM intake UNION SELECT update_id FROM quarantine"
            )
            live = self._live = {uid for (uid,) in rows}
        recent = self._recent_ids
        fresh = []
        for u in updates:
            uid = u["update_id"]
            if uid not in live and uid not in recent:
                live.add(uid)
                fresh.append(u)
        return fresh

    def _forget(self, update_id: int) -> None:
        """An unordered source's update left the intake: remember it as seen."""
        live = self._live
        if live is None or update_id not in live:
            return
        live.discard(update_id)
        recent = self._recent
        recent.append(update_id)
        self._recent_ids.add(update_id)
        if len(recent) > SEEN_WINDOW:
            self._recent_ids.discard(recent.popleft())

    def restart_ids(self) -> None:
        """The source saw update ids restart lower: accept them as new from now on."""
        self._highest = -1

    def started(self, update_id: int) -> None:
        """A handler is about to start on this update: count the attempt before it runs.

        The count is written by a callback queued now, so it commits before the handler's
        first step (tasks created after this call run after it).
        """
        self._started.append((update_id,))
        if not self._start_flush_due:
            self._start_flush_due = True
            asyncio.get_running_loop().call_soon(self._flush_starts)

    def finished(self, update_id: int, *, now: bool = False) -> None:
        """Mark an update finished; written within :data:`FLUSH_DELAY` seconds, or ``now``."""
        self._finished.append((update_id,))
        if self._live is not None:
            self._forget(update_id)
        if now:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush)

    def uncount(self, update_ids: Iterable[int]) -> None:
        """Give back the attempts of handlers a clean stop cancelled (they did not crash)."""
        rows = [(uid,) for uid in update_ids]
        if rows:
            self._background(
                self._run_sql,
                "UPDATE intake SET attempts = max(attempts - 1, 0) WHERE update_id = ?",
                rows,
            )

    async def flush(self) -> None:
        """Write every pending mark now and wait until the writes are done."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush()
        self._flush_starts()
        if self._last_write is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._last_write)

    async def close(self) -> None:
        """Flush, fold the WAL into the file, close and unlock. Safe to call twice."""
        if self._db is None:
            return
        try:
            await self.flush()
            if self._checkpoint is not None:
                await asyncio.wait([self._checkpoint])
            await self._write(self._db.execute, "PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.close_now()

    def close_now(self) -> None:
        """Close and unlock without writing pending marks (for tools that wrote none).

        Safe to call twice.
        """
        if self._db is None:
            return
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        self._db.close()
        self._db = None  # type: ignore[assignment]
        os.close(self._lock_fd)

    def set_aside(self, update_id: int, *, attempts: int, reason: str) -> None:
        """Quarantine one update now, as opening the journal does with a repeat offender: it
        moves from the intake to the quarantine table (``tgrunner journal list`` shows it)
        with ``attempts``, and an error line saying ``reason`` is logged. Used for an update
        that killed its worker process 3 times. Written like a finish mark."""
        log.error(
            "update %d %s; quarantined, not handled again. See it with 'tgrunner journal "
            "list', replay it with 'tgrunner journal retry %d', forget it with 'tgrunner "
            "journal drop %d'",
            update_id,
            reason,
            update_id,
            update_id,
        )
        self._background(self._quarantine_one, update_id, attempts, time.time())
        if self._live is not None:
            self._forget(update_id)

    # -- operator actions (tgrunner journal ...) -------------------------------------------

    def retry(self, update_ids: Iterable[int] | None = None) -> int:
        """Move quarantined updates back to the intake (all when None); how many moved."""
        return self._release(update_ids, keep=True)

    def drop(self, update_ids: Iterable[int] | None = None) -> int:
        """Forget quarantined updates (all when None); how many were dropped."""
        return self._release(update_ids, keep=False)

    # -- internals ----------------------------------------------------------------------------

    def _quarantine_repeat_offenders(self) -> list[int]:
        db = self._db
        rows = db.execute(
            "SELECT update_id, attempts FROM intake WHERE attempts >= ? ORDER BY seq",
            (MAX_ATTEMPTS,),
        ).fetchall()
        if not rows:
            return []
        now = time.time()
        with _transaction(db):
            db.execute(
                "INSERT OR REPLACE INTO quarantine (update_id, attempts, since, body) "
                "SELECT update_id, attempts, ?, body FROM intake WHERE attempts >= ?",
                (now, MAX_ATTEMPTS),
            )
            db.execute("DELETE FROM intake WHERE attempts >= ?", (MAX_ATTEMPTS,))
        for update_id, attempts in rows:
            log.error(
                "update %d was being handled when the process died %d times; quarantined, "
                "not replayed. See it with 'tgrunner journal list', replay it with "
                "'tgrunner journal retry %d', forget it with 'tgrunner journal drop %d'",
                update_id,
                attempts,
                update_id,
                update_id,
            )
        return [uid for uid, _ in rows]

    def _release(self, update_ids: Iterable[int] | None, *, keep: bool) -> int:
        db = self._db
        if update_ids is None:
            where, args = "", []
        else:
            ids = list(update_ids)
            if not ids:
                return 0
            where, args = f" WHERE update_id IN ({','.join('?' * len(ids))})", ids
        with _transaction(db):
            if keep:
                db.execute(
                    "INSERT OR IGNORE INTO intake (update_id, attempts, body) "
                    f"SELECT update_id, 0, body FROM quarantine{where} ORDER BY since",
                    args,
                )
            n = db.execute(f"DELETE FROM quarantine{where}", args).rowcount
        return int(n)

    def _insert(self, rows: list[tuple[int, bytes]], highest: int) -> None:
        with _transaction(self._db) as db:
            db.executemany("INSERT OR IGNORE INTO intake (update_id, body) VALUES (?, ?)", rows)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('highest', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (highest,),
            )

    def _quarantine_one(self, update_id: int, attempts: int, since: float) -> None:
        with _transaction(self._db) as db:
            db.execute(
                "INSERT OR REPLACE INTO quarantine (update_id, attempts, since, body) "
                "SELECT update_id, ?, ?, body FROM intake WHERE update_id = ?",
                (attempts, since, update_id),
            )
            db.execute("DELETE FROM intake WHERE update_id = ?", (update_id,))

    def _run_sql(self, sql: str, rows: list[tuple[int]]) -> None:
        with _transaction(self._db) as db:
            db.executemany(sql, rows)

    def _flush(self) -> None:
        self._flush_timer = None
        if self._finished and self._db is not None:
            done, self._finished = self._finished, []
            self._background(self._run_sql, "DELETE FROM intake WHERE update_id = ?", done)

    def _flush_starts(self) -> None:
        self._start_flush_due = False
        if self._started and self._db is not None:
            started, self._started = self._started, []
            self._background(
                self._run_sql,
                "UPDATE intake SET attempts = attempts + 1 WHERE update_id = ?",
                started,
            )

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        if self._writer is None:
            return fn(*args)
        fut = asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)
        self._last_write = fut
        return await fut

    def _background(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a mark write now (normal) or queued on the writer thread (full)."""
        if self._writer is None:
            try:
                fn(*args)
            except Exception as exc:
                self._failed(exc)
            return
        fut = asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)
        self._last_write = fut
        fut.add_done_callback(self._write_done)

    def _write_done(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._failed(fut.exception())  # type: ignore[arg-type]

    def _failed(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(exc)
        else:
            log.error("writing journal marks failed: %s", exc)

    def _start_checkpoint(self) -> None:
        self._writes_since_checkpoint = 0
        self._checkpoint = asyncio.get_running_loop().run_in_executor(None, self._fold_wal)
        self._checkpoint.add_done_callback(self._checkpoint_done)

    def _fold_wal(self) -> None:
        # A PASSIVE checkpoint on its own connection copies what it can without blocking the
        # writer, so it is safe in a worker thread while the event loop keeps writing.
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(f"PRAGMA synchronous={self._sync}")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def _checkpoint_done(self, fut: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("journal checkpoint failed (%s); will retry", fut.exception())
