"""The PostgreSQL backend (asyncpg): many processes on many machines.

Locks are transaction-level advisory locks, one per key (``pg_advisory_xact_lock`` on a 64-bit
hash of the table and key), taken in ascending order, in READ COMMITTED:

- They lock keys that have no row yet. ``SELECT … FOR UPDATE`` locks only rows that exist, so
  two first writes of a key would both read "absent", and lock order would not cover
  inserts; rows locked by ``FOR UPDATE`` also deadlock with the inserts of other keys.
- A waiter sleeps in the server's lock queue and is woken by the holder's commit (handoff).
  The server frees the locks at commit, rollback or disconnect, so a killed process's locks go
  as soon as its connection closes.
- Each read is its own statement after the locks, so it sees what the last holder committed.
- ``lock_timeout`` bounds the wait (55P03, StateConflict); deadlock and serialization errors
  (40P01, 40001) at locking are retried by the store.

Deletes write an already expired row (a tombstone), so a commit is one upsert; the sweep
deletes expired rows with ``SKIP LOCKED``, so it never waits for (or deadlocks with) a
transaction. Expiry uses the server's clock, the same for every machine.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg

from tgrunner.errors import StateConflict, StateUnavailable
from tgrunner.state.api import Retry, StoreOptions, Write
from tgrunner.state.registry import safe_url

__all__ = ["PostgresBackend"]

_NOW = "extract(epoch FROM clock_timestamp())"
_RETRY = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
_DOWN = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def lock_id(table: str, key: str) -> int:
    """The advisory lock of ``key`` in ``table``: a signed 64-bit hash."""
    digest = hashlib.blake2b(f"{table}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _Connection(asyncpg.Connection):
    """A connection given back to the pool as it is: every path here ends its transaction,
    so the default reset (one more round trip per release) has nothing to do."""

    def get_reset_query(self) -> str:
        return ""


class PostgresBackend:
    """Values in a table (``options.table``) of the database at a ``postgresql://`` URL."""

    def __init__(self, url: str, options: StoreOptions) -> None:
        self.dsn = "postgresql" + url[url.index("://") :]
        self.url = safe_url(url)
        self.options = options
        self.table = t = options.table
        self.identity = f"{self.url}#{t}"
        self._pool: asyncpg.Pool | None = None
        self._timeout_ms = max(1, round(options.lock_timeout * 1000))
        self._read_sql = (
            f"SELECT key, value FROM {t} WHERE key = ANY($1::text[]) "
            f"AND (expires_at IS NULL OR expires_at > {_NOW})"
        )
        self._write_sql = (
            f"INSERT INTO {t} (key, value, expires_at) SELECT k, v, CASE WHEN v IS NULL "
            f"THEN 0 WHEN ttl IS NULL THEN NULL ELSE {_NOW} + ttl END "
            "FROM unnest($1::text[], $2::bytea[], $3::float8[]) AS w(k, v, ttl) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
            "expires_at = EXCLUDED.expires_at"
        )
        self._purge_sql = (
            f"DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at <= {_NOW} "
            "LIMIT 1000 FOR UPDATE SKIP LOCKED)"
        )

    def _error(self, exc: BaseException, what: str) -> BaseException:
        if isinstance(exc, _RETRY) and what == "locking":
            return Retry(f"{exc.sqlstate}: {exc}")
        if isinstance(exc, _RETRY):
            return StateConflict(f"{self.url}: {what} failed, nothing written: {exc}")
        if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
            return StateConflict(
                f"{self.url}: the keys were not free within lock_timeout "
                f"({self.options.lock_timeout:g} s)"
            )
        if isinstance(exc, (*_DOWN, asyncpg.PostgresError)):
            doubt = " (it may or may not have happened)" if what == "commit" else ""
            return StateUnavailable(f"the state store {self.url}: {what} failed{doubt}: {exc}")
        return exc

    async def open(self) -> None:
        t = self.table
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.options.pool_size,
                timeout=self.options.connect_timeout, connection_class=_Connection,
            )  # fmt: skip
            async with self._pool.acquire() as conn:
                # One creator at a time: concurrent CREATE … IF NOT EXISTS can still collide.
                await conn.execute(
                    f"BEGIN; SELECT pg_advisory_xact_lock({lock_id(t, '')}); "
                    f"CREATE TABLE IF NOT EXISTS {t} (key text PRIMARY KEY, value bytea, "
                    "expires_at double precision); "
                    f"CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at) "
                    "WHERE expires_at IS NOT NULL; COMMIT"
                )
        except BaseException as exc:
            await self.close()
            mapped = self._error(exc, "opening")
            if mapped is exc:
                raise
            raise StateUnavailable(f"cannot open the state store {self.url}: {exc}") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _acquire(self) -> Any:
        if self._pool is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        try:
            return await self._pool.acquire(timeout=self.options.lock_timeout)
        except TimeoutError:
            raise StateConflict(
                f"{self.url}: no free connection within lock_timeout: every one of pool_size "
                f"({self.options.pool_size}) is in a transaction; raise pool_size"
            ) from None
        except Exception as exc:
            raise self._error(exc, "connecting") from exc

    async def give_back(self, conn: Any, clean: bool) -> None:
        """Return ``conn`` to the pool, ending its transaction unless ``clean``."""
        assert self._pool is not None
        if not clean and not conn.is_closed():
            try:
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
            except Exception:
                conn.terminate()
        await self._pool.release(conn)

    async def lock(self, keys: Sequence[str]) -> _Session:
        conn = await self._acquire()
        ids = sorted({lock_id(self.table, k) for k in keys})
        try:
            await conn.execute(
                f"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = "
                f"{self._timeout_ms}; SELECT "
                + ", ".join(f"pg_advisory_xact_lock({i})" for i in ids)
            )
            rows = await conn.fetch(self._read_sql, list(keys))
        except BaseException as exc:
            await asyncio.shield(self.give_back(conn, clean=False))
            mapped = self._error(exc, "locking")
            if mapped is exc:
                raise
            raise mapped from exc
        return _Session(self, conn, {row[0]: row[1] for row in rows})

    async def read(self, key: str) -> bytes | None:
        if self._pool is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        try:
            rows = await self._pool.fetch(self._read_sql, [key])
        except Exception as exc:
            raise self._error(exc, "reading") from exc
        return rows[0][1] if rows else None

    async def purge(self) -> int:
        if self._pool is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        try:
            status = await self._pool.execute(self._purge_sql)
        except Exception as exc:
            raise self._error(exc, "purging") from exc
        return int(status.rpartition(" ")[2])


class _Session:
    def __init__(self, backend: PostgresBackend, conn: Any, values: dict[str, bytes]) -> None:
        self.backend = backend
        self.conn = conn
        self.values = values

    async def commit(self, writes: dict[str, Write]) -> None:
        clean = False
        try:
            if writes:
                await self.conn.execute(
                    self.backend._write_sql,
                    list(writes),
                    [raw for raw, _ in writes.values()],
                    [ttl for _, ttl in writes.values()],
                )
            await self.conn.execute("COMMIT")
            clean = True
        except Exception as exc:
            raise self.backend._error(exc, "commit") from exc
        finally:
            await self.backend.give_back(self.conn, clean)

    async def abort(self) -> None:
        # Nothing was written: ROLLBACK ends the locks' transaction. When the connection is
        # gone, so is the transaction, and the caller's own error is the one to see.
        await self.backend.give_back(self.conn, clean=False)
