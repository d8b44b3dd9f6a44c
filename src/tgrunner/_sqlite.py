"""One SQLite connection shared by threads, with a busy wait of its own and a way to call it
from an event loop without a thread: what :class:`~tgrunner.jobs.store.JobStore` and the
broadcast outbox (:class:`~tgrunner.flood.outbox.Outbox`) run on, files that several processes
write.

- **Busy wait.** SQLite's own (``busy_timeout``) sleeps 1 ms, then 2, 5, 10 ms… while another
  process holds the write lock, which caps a few busy processes near a thousand transactions
  a second. :class:`Database` sets SQLite's to 0 and tries again itself after 50 µs, doubling
  up to 2 ms, until its ``busy_timeout``.
- **On an event loop.** :meth:`Database.run` calls a function that uses the database on the
  running loop: while the file is busy, the call fails at once inside, and ``run`` waits with
  ``asyncio.sleep`` and calls it again. The function must change nothing before its
  transaction begins (or before its first read), so that calling it again is safe. Only
  SQLite's own work then runs on the loop: tens of µs, and now and then a checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Database"]

R = TypeVar("R")

_FIRST_PAUSE = 50e-6
_LAST_PAUSE = 0.002
# Set by Database.run(): a busy file raises _Busy at once, for run() to wait on the loop.
_ON_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("_ON_LOOP", default=False)


class _Busy(Exception):
    """The file is busy and the caller waits on its event loop."""


class Database:
    """The SQLite file ``path`` in WAL mode (``synchronous=NORMAL``), set up with the SQL
    script ``schema``; writers wait for each other up to ``busy_timeout`` seconds. ``name``
    says what the file is in errors (default ``"the database"``). Raises ``sqlite3.Error``
    when the file cannot be opened. Thread-safe: one connection behind a lock."""

    def __init__(
        self, path: Path, *, schema: str, busy_timeout: float, name: str = "the database"
    ) -> None:
        self.busy_timeout = busy_timeout
        self._closed = f"{name} is closed"
        self._lock = threading.Lock()
        db = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(schema)
            db.execute("PRAGMA busy_timeout=0")  # we wait ourselves: see _execute
        except BaseException:
            db.close()
            raise
        self._db: sqlite3.Connection | None = db

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock first, so a read inside it
        cannot be overtaken by another process's write, and a write never fails at once on a
        stale snapshot."""
        with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError(self._closed)
            self._execute(db, "BEGIN IMMEDIATE")
            try:
                yield db
                self._execute(db, "COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query, outside any transaction."""
        with self._lock:
            if self._db is None:
                raise RuntimeError(self._closed)
            return self._execute(self._db, sql, args).fetchall()

    def _execute(
        self, db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()
    ) -> sqlite3.Cursor:
        """``db.execute``, tried again while the file is busy, up to the busy timeout."""
        pause = _FIRST_PAUSE
        deadline = 0.0
        while True:
            try:
                return db.execute(sql, args)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                if _ON_LOOP.get():
                    raise _Busy from None
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.busy_timeout
                elif now >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, _LAST_PAUSE)

    async def run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``fn(*args, **kwargs)`` on the running event loop (see the module doc);
        ``sqlite3.OperationalError`` when the file stays busy past the busy timeout."""
        pause = _FIRST_PAUSE
        deadline = 0.0
        while True:
            token = _ON_LOOP.set(True)
            try:
                return fn(*args, **kwargs)
            except _Busy:
                pass
            finally:
                _ON_LOOP.reset(token)
            now = time.monotonic()
            if not deadline:
                deadline = now + self.busy_timeout
            elif now >= deadline:
                raise sqlite3.OperationalError(
                    f"database is locked (busy for more than {self.busy_timeout:g} s)"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_PAUSE)
