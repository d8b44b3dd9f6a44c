"""The SQLite backend's reads on the event loop: they see every commit at once, a read that
would wait is done in the store's thread instead, and one that fails is a typed error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tgrunner.errors import StateUnavailable
from tgrunner.state import open_store


async def test_reads_on_the_loop_see_another_connections_commit_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite:///{path}", purge_interval=0)
    await store.set("k", 1)
    assert await store.get("k") == 1
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("UPDATE tgrunner_state SET value = ? WHERE key = 'k'", (b"2",))
        assert await store.get("k") == 2
        assert await store.update("k", lambda v: v + 1) == 3
        (raw,) = other.execute("SELECT value FROM tgrunner_state WHERE key = 'k'").fetchone()
        assert raw == b"3"
    finally:
        other.close()
        await store.close()


class _Refusing(sqlite3.Connection):
    """A real connection whose reads fail as ``error`` says, the way SQLite answers a read
    that would wait (busy) or a broken file."""

    error = "database is locked"

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
        if sql.startswith("SELECT"):
            raise sqlite3.OperationalError(self.error)
        return super().execute(sql, *args)


async def test_a_read_that_would_wait_is_done_in_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite:///{path}", purge_interval=0)
    await store.set("k", 7)
    backend = store.backend
    backend._reader.close()
    backend._reader = sqlite3.connect(path, factory=_Refusing, check_same_thread=False)
    try:
        assert await store.get("k") == 7
        assert await store.update("k", lambda v: v + 1) == 8
        assert await store.get("k") == 8
    finally:
        await store.close()


async def test_a_read_that_fails_otherwise_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite:///{path}", purge_interval=0)
    await store.set("k", 7)
    backend = store.backend
    backend._reader.close()
    backend._reader = sqlite3.connect(path, factory=_Refusing, check_same_thread=False)
    backend._reader.error = "disk I/O error"
    try:
        with pytest.raises(StateUnavailable, match="disk I/O error"):
            await store.get("k")
        with pytest.raises(StateUnavailable):
            await store.update("k", lambda v: v + 1)
    finally:
        await store.close()
    reopened = open_store(f"sqlite:///{path}", purge_interval=0)
    try:
        assert await reopened.get("k") == 7  # nothing half-written
    finally:
        await reopened.close()


@pytest.mark.parametrize("keys", [("a",), ("a", "b", "c")])
async def test_a_transaction_reads_its_locked_keys_values(tmp_path: Path, keys: tuple) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}", purge_interval=0)
    try:
        for n, key in enumerate(keys):
            await store.set(key, n)
        async with store.transaction(*keys) as tx:
            assert [await tx.get(k) for k in keys] == list(range(len(keys)))
    finally:
        await store.close()
