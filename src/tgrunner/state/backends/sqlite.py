"""The SQLite backend: one file, shared by the processes of one machine.

- Keys are locked with byte locks on ``FILE-keylocks`` (:mod:`._keylocks`), not with SQLite's
  write lock: a transaction that awaits between its read and its write (a Bot API call, say)
  then holds only its own keys, and transactions on other keys run meanwhile. Holding
  ``BEGIN IMMEDIATE`` across the await would serialise every transaction of every process.
- The commit is one short ``BEGIN IMMEDIATE`` … ``COMMIT``, in WAL mode, so readers never
  wait for it and a killed process leaves the last committed values (``busy_timeout`` is
  ``lock_timeout``; such waits are SQLite's own and short).
- Writes, and anything that may wait, run in the store's one thread, off the event loop.
  Reads (the values of a transaction's keys once they are locked, and ``get``) run on the
  loop itself, on a second, read-only connection that never waits: in WAL mode a read takes
  no lock that a writer holds, and it costs a few µs, where a hop to the thread and back costs
  about 0.1 ms. With ``busy_timeout`` 0, the rare read that would wait (another process
  recovering the WAL index after a crash) is answered busy at once and is done again in the
  thread.
- Expiry uses this machine's clock.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit

from tgrunner.errors import ConfigError, StateConflict, StateUnavailable
from tgrunner.state.api import StoreOptions, Write
from tgrunner.state.backends._keylocks import KeyLocks

__all__ = ["SQLiteBackend"]

T = TypeVar("T")
_PURGE_BATCH = 1000


def _busy(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc)


class SQLiteBackend:
    """Values in the SQLite file of ``sqlite:///PATH`` (``sqlite:////abs/path``)."""

    def __init__(self, url: str, options: StoreOptions) -> None:
        parts = urlsplit(url)
        path = parts.path[1:]
        if parts.netloc or not path or path == ":memory:":
            raise ConfigError(
                f"state URL {url!r}: give sqlite:///PATH (sqlite:////abs/path for an absolute "
                "path); for a store in memory give memory://"
            )
        self.path = os.path.realpath(path)
        if not os.path.isdir(os.path.dirname(self.path)):
            raise ConfigError(
                f"state URL {url!r}: the folder {os.path.dirname(self.path)} does not exist; "
                "create it first"
            )
        self.url = f"sqlite:///{path}"
        self.identity = f"sqlite:{self.path}"
        self.options = options
        self.table = options.table
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None  # the loop's (see the module doc)
        self._locks: KeyLocks | None = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            if _busy(exc):
                raise StateConflict(f"{self.url} stayed locked past lock_timeout: {exc}") from exc
            raise StateUnavailable(f"the state store {self.url} failed: {exc}") from exc

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tgrunner-state-sqlite")
        try:
            await self._run(self._open)
            self._reader = await self._run(self._open_reader)
            self._locks = KeyLocks.shared(self.path + "-keylocks")
        except (OSError, StateUnavailable, StateConflict) as exc:
            await self.close()
            raise StateUnavailable(f"cannot open the state store {self.url}: {exc}") from exc

    def _open(self) -> None:
        conn = sqlite3.connect(
            self.path, timeout=self.options.lock_timeout, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        try:
            self._wal(conn)
            conn.execute(f"PRAGMA synchronous={self.options.synchronous.upper()}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, "
                "value BLOB NOT NULL, expires_at REAL) WITHOUT ROWID"
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_expires ON {self.table} (expires_at) "
                "WHERE expires_at IS NOT NULL"
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _open_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=0, isolation_level=None, check_same_thread=False
        )  # fmt: skip
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL. Processes that open a new file at the same moment each hold
        a shared lock and want an exclusive one, a deadlock that SQLite answers at once with
        "database is locked", whatever the busy timeout: try again, a few ms apart, until
        ``lock_timeout``. (Once the file is in WAL mode, which lasts, this never waits.)"""
        deadline = time.monotonic() + self.options.lock_timeout
        for attempt in itertools.count():
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(min(0.05, 0.001 * 2**attempt) * random.uniform(0.5, 1.0))

    async def close(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(executor, self._conn.close)
            self._conn = None
        executor.shutdown(wait=False)
        if self._locks is not None:
            self._locks.close()
            self._locks = None

    def _read(
        self, keys: Sequence[str], conn: sqlite3.Connection | None = None
    ) -> dict[str, bytes]:
        conn = conn or self._conn
        assert conn is not None
        marks = ",".join("?" * len(keys))
        rows = conn.execute(
            f"SELECT key, value FROM {self.table} WHERE key IN ({marks}) "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (*keys, time.time()),
        )
        return dict(rows)

    async def _values(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The committed values of ``keys``: read on the loop, in the thread if that is busy."""
        reader = self._reader
        if reader is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        try:
            return self._read(keys, reader)
        except sqlite3.Error as exc:
            if not _busy(exc):
                raise StateUnavailable(f"the state store {self.url} failed: {exc}") from exc
        return await self._run(self._read, keys)

    async def lock(self, keys: Sequence[str]) -> _Session:
        if self._locks is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        locks = self._locks
        held = await locks.acquire(keys, self.options.lock_timeout)
        try:
            values = await self._values(keys)
        except BaseException:
            locks.release(held)
            raise
        return _Session(self, locks, held, values)

    async def read(self, key: str) -> bytes | None:
        return (await self._values((key,))).get(key)

    def _commit(self, writes: dict[str, Write]) -> None:
        assert self._conn is not None
        conn, now = self._conn, time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                f"DELETE FROM {self.table} WHERE key = ?",
                [(k,) for k, (raw, _) in writes.items() if raw is None],
            )
            conn.executemany(
                f"INSERT OR REPLACE INTO {self.table} (key, value, expires_at) VALUES (?, ?, ?)",
                [
                    (k, raw, None if ttl is None else now + ttl)
                    for k, (raw, ttl) in writes.items()
                    if raw is not None
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _purge(self) -> int:
        assert self._conn is not None
        cursor = self._conn.execute(
            f"DELETE FROM {self.table} WHERE key IN (SELECT key FROM {self.table} "
            "WHERE expires_at <= ? LIMIT ?)",
            (time.time(), _PURGE_BATCH),
        )
        return cursor.rowcount

    async def purge(self) -> int:
        return await self._run(self._purge)


class _Session:
    def __init__(
        self, backend: SQLiteBackend, locks: KeyLocks, held: list[int], values: dict[str, bytes]
    ) -> None:
        self.backend = backend
        self.locks = locks
        self.held = held
        self.values = values

    async def commit(self, writes: dict[str, Write]) -> None:
        try:
            if writes:
                await self.backend._run(self.backend._commit, writes)
        finally:
            self.locks.release(self.held)

    async def abort(self) -> None:
        self.locks.release(self.held)
