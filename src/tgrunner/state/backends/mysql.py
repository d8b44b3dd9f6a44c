"""The MySQL/MariaDB backend (asyncmy): many processes on many machines.

Why asyncmy: its protocol core is Cython, about 3x aiomysql's pooled throughput, it has no
other dependency, and it ships wheels for every supported Python (3.10 to 3.14 now). aiomysql
was the other candidate, but it lags PyMySQL, which it is built on: 0.3.2 with PyMySQL 1.2
cannot send a bytes parameter at all (it imports a helper PyMySQL removed), and every key and
value here is bytes.

Locks are named locks, one per key (``GET_LOCK`` on a hash of database, table and key), taken
in ascending order of name in one statement:

- They lock keys that have no row yet; InnoDB's ``SELECT … FOR UPDATE`` on an absent key
  takes a gap lock, and two such transactions then deadlock on their inserts.
- A waiter sleeps in the server and is woken by the holder's release (handoff). The server
  drops a session's named locks when its connection closes, so a killed process's locks go
  with it.
- They belong to the session, not to the transaction: a deadlock or lock wait timeout of the
  commit's write (1213, 1205; only with the sweep, or another writer) rolls back that write
  alone, and it is retried, transparently, while the keys stay locked.
- ``GET_LOCK`` waits ``lock_timeout`` per key, then StateConflict. A lock-phase deadlock
  (1213, or MySQL's 3058) is retried by the store.

Each write is one autocommit upsert (deletes write an expired row), so it is atomic by itself.
Expiry uses the server's clock. A Galera or multi-primary cluster does not share named locks
between its nodes: give every process the same primary.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncmy
import asyncmy.errors

from tgrunner.errors import ConfigError, StateConflict, StateUnavailable
from tgrunner.state.api import Retry, StoreOptions, Write, retrying
from tgrunner.state.registry import safe_url

__all__ = ["MySQLBackend"]

_NOW = "UNIX_TIMESTAMP(NOW(6))"
_RETRY_CODES = {1213, 1205, 3058}  # deadlock, lock wait timeout, user-lock deadlock (MySQL)
_DOWN = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncmy.errors.MySQLError)


def _code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


class MySQLBackend:
    """Values in a table (``options.table``) of the database at a ``mysql://`` URL."""

    def __init__(self, url: str, options: StoreOptions) -> None:
        parts = urlsplit(url)
        self.database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not self.database:
            raise ConfigError(f"state URL {safe_url(url)!r}: give mysql://USER:PASS@HOST:PORT/DB")
        self._connect: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "db": self.database,
        }
        self.url = safe_url(url)
        self.options = options
        self.table = t = options.table
        self.identity = f"{self.url}#{t}"
        self._pool: Any = None
        self._purge_sql = f"DELETE FROM {t} WHERE exp <= {_NOW} LIMIT 1000"

    def read_sql(self, count: int) -> str:
        """The read of ``count`` keys."""
        marks = ", ".join(["%s"] * count)
        return (
            f"SELECT k, v FROM {self.table} WHERE k IN ({marks}) AND (exp IS NULL OR exp > {_NOW})"
        )

    def lock_name(self, key: str) -> str:
        """The named lock of ``key`` (names are server-wide and at most 64 characters)."""
        seed = f"{self.database}\0{self.table}\0{key}".encode()
        return "tgr:" + hashlib.blake2b(seed, digest_size=20).hexdigest()

    def _error(self, exc: BaseException, what: str) -> BaseException:
        if _code(exc) in _RETRY_CODES:
            if what == "locking":
                return Retry(f"{_code(exc)}: {exc}")
            return StateConflict(f"{self.url}: {what} failed, nothing written: {exc}")
        if isinstance(exc, _DOWN):
            doubt = " (it may or may not have happened)" if what == "commit" else ""
            return StateUnavailable(f"the state store {self.url}: {what} failed{doubt}: {exc}")
        return exc

    async def open(self) -> None:
        t = self.table
        try:
            self._pool = await asyncmy.create_pool(
                **self._connect, minsize=1, maxsize=self.options.pool_size, autocommit=True,
                connect_timeout=self.options.connect_timeout,
            )  # fmt: skip
            async with self._pool.acquire() as conn, conn.cursor() as cur:
                # Asked first: CREATE … IF NOT EXISTS on a table that exists logs a note.
                await cur.execute(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
                    "AND table_name = %s",
                    [t],
                )
                if not await cur.fetchall():
                    await cur.execute(
                        f"CREATE TABLE IF NOT EXISTS {t} (k VARBINARY(512) NOT NULL PRIMARY KEY, "
                        f"v LONGBLOB NULL, exp DOUBLE NULL, KEY {t}_exp (exp)) ENGINE=InnoDB"
                    )
        except BaseException as exc:
            await self.close()
            if self._error(exc, "opening") is exc:
                raise
            raise StateUnavailable(f"cannot open the state store {self.url}: {exc}") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    async def _acquire(self) -> Any:
        if self._pool is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        try:
            async with asyncio.timeout(self.options.lock_timeout):
                return await self._pool.acquire()
        except TimeoutError:
            raise StateConflict(
                f"{self.url}: no free connection within lock_timeout: every one of pool_size "
                f"({self.options.pool_size}) is in a transaction; raise pool_size"
            ) from None
        except Exception as exc:
            raise self._error(exc, "connecting") from exc

    async def give_back(self, conn: Any, locked: bool) -> None:
        """Return ``conn`` to the pool, first letting go of its named locks when ``locked``;
        a connection in doubt is closed (the server then drops its locks)."""
        try:
            if locked and conn.connected:
                async with conn.cursor() as cur:
                    await cur.execute("DO RELEASE_ALL_LOCKS()")
        except BaseException:
            conn.close()
            raise
        finally:
            self._pool.release(conn)

    async def lock(self, keys: Sequence[str]) -> _Session:
        conn = await self._acquire()
        names = sorted({self.lock_name(k) for k in keys})
        timeout = self.options.lock_timeout
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT " + ", ".join(["GET_LOCK(%s, %s)"] * len(names)),
                    [arg for name in names for arg in (name, timeout)],
                )
                got = await cur.fetchone()
                rows = None
                if all(v == 1 for v in got):
                    await cur.execute(self.read_sql(len(keys)), [k.encode() for k in keys])
                    rows = await cur.fetchall()
                else:  # timed out on one: let go of those it got
                    await cur.execute("DO RELEASE_ALL_LOCKS()")
        except BaseException as exc:
            conn.close()  # in doubt (cancelled mid-wait, say): the server drops its locks
            self._pool.release(conn)
            mapped = self._error(exc, "locking")
            if mapped is exc:
                raise
            raise mapped from exc
        if rows is None:
            self._pool.release(conn)
            raise StateConflict(
                f"{self.url}: the keys were not free within lock_timeout ({timeout:g} s)"
            )
        return _Session(self, conn, {k.decode(): v for k, v in rows})

    async def _fetch(self, sql: str, args: Any, what: str) -> Any:
        conn = await self._acquire()
        try:
            async with conn.cursor() as cur:
                count = await cur.execute(sql, args)
                return count, await cur.fetchall()
        except BaseException as exc:
            conn.close()
            mapped = self._error(exc, what)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            self._pool.release(conn)

    async def read(self, key: str) -> bytes | None:
        _, rows = await self._fetch(self.read_sql(1), [key.encode()], "reading")
        return rows[0][1] if rows else None

    async def purge(self) -> int:
        try:
            count, _ = await self._fetch(self._purge_sql, None, "purging")
        except StateConflict:  # a deadlock with a commit, which is retried: sweep next time
            return 0
        return int(count)

    def write_sql(self, writes: dict[str, Write]) -> tuple[str, list[Any]]:
        """The one upsert that commits ``writes``, and its arguments."""
        rows: list[str] = []
        args: list[Any] = []
        for key, (raw, ttl) in writes.items():
            if raw is None:
                rows.append("(%s, NULL, 0)")
                args.append(key.encode())
            elif ttl is None:
                rows.append("(%s, %s, NULL)")
                args += [key.encode(), raw]
            else:
                rows.append(f"(%s, %s, {_NOW} + %s)")
                args += [key.encode(), raw, ttl]
        sql = (
            f"INSERT INTO {self.table} (k, v, exp) VALUES {', '.join(rows)} "
            "ON DUPLICATE KEY UPDATE v = VALUES(v), exp = VALUES(exp)"
        )
        return sql, args


class _Session:
    def __init__(self, backend: MySQLBackend, conn: Any, values: dict[str, bytes]) -> None:
        self.backend = backend
        self.conn = conn
        self.values = values

    async def _write(self, sql: str, args: list[Any]) -> None:
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(sql, args)
        except Exception as exc:
            if _code(exc) in _RETRY_CODES:  # the write alone was rolled back; keys still ours
                raise Retry(f"{_code(exc)}: {exc}") from exc
            raise

    async def commit(self, writes: dict[str, Write]) -> None:
        backend = self.backend
        if not writes:
            await self.abort()
            return
        sql, args = backend.write_sql(writes)
        try:
            await retrying(lambda: self._write(sql, args), backend.options.retries, "commit")
        except StateConflict:
            await backend.give_back(self.conn, locked=True)
            raise
        except BaseException as exc:
            self.conn.close()
            backend._pool.release(self.conn)
            mapped = backend._error(exc, "commit")
            if mapped is exc:
                raise
            raise mapped from exc
        try:
            await backend.give_back(self.conn, locked=True)
        except Exception:  # committed; the closed connection took its locks with it
            pass

    async def abort(self) -> None:
        try:
            await self.backend.give_back(self.conn, locked=True)
        except Exception:  # closed: the server drops the locks with the session
            pass
