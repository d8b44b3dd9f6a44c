"""The store's API on every backend, against the real services: reads, writes, TTLs, updates,
transactions (atomic commit, rollback, their key set), refusals and unreachable servers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from state_backends import BACKENDS, fresh_url

from tgrunner.errors import StateConflict
from tgrunner.state import Store, open_store

pytestmark = [pytest.mark.timeout(30), pytest.mark.parametrize("backend", BACKENDS)]


async def test_get_set_delete_round_trip_json(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        assert await store.get("k") is None
        assert await store.get("k", {"d": 1}) == {"d": 1}
        value = {"name": "Zoë", "n": [1, 2.5, None, True], "nested": {"a": "\u2603"}}
        await store.set("k", value)
        assert await store.get("k") == value
        await store.set("k", 7)
        assert await store.get("k") == 7
        await store.delete("k")
        assert await store.get("k", "gone") == "gone"
        await store.delete("never-set")  # deleting nothing is fine
        long_key = "é" * 256  # 512 bytes, the longest key
        await store.set(long_key, "x")
        assert await store.get(long_key) == "x"


async def test_ttl_expires_and_the_sweep_removes_it(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        start = time.monotonic()
        await store.set("short", "v", ttl=0.4)
        await store.set("unread", "v", ttl=0.4)  # read by no one: only a sweep removes it
        await store.set("kept", "v")
        await store.set("reset", "v", ttl=0.4)
        await store.set("reset", "w")  # a set without ttl ends the expiry
        assert await store.get("short") == "v"
        await asyncio.sleep(max(0.0, 0.5 - (time.monotonic() - start)))
        assert await store.get("short") is None
        assert await store.get("kept") == "v"
        assert await store.get("reset") == "w"
        async with store.transaction("short") as tx:
            assert await tx.get("short", "absent") == "absent"
        removed = await store.purge()
        assert removed >= (0 if backend == "redis" else 1)  # Redis expires keys itself
        assert await store.purge() == 0


async def test_update_takes_sync_and_async_functions(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        assert await store.update("n", lambda v: v + 1, default=0) == 1

        async def double(v: int) -> int:
            await asyncio.sleep(0)
            return v * 2

        assert await store.update("n", double) == 2
        assert await store.get("n") == 2
        counts = await asyncio.gather(
            *(store.update("c", lambda v: v + 1, default=0) for _ in range(40))
        )
        assert sorted(counts) == list(range(1, 41))
        assert await store.get("c") == 40


async def test_transaction_commits_all_writes_at_its_end(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        await store.set("a", 10)
        other = open_store(url)  # another store on the same data: sees only what is committed
        async with other:
            async with store.transaction("b", "a") as tx:
                assert tx.keys == ("a", "b")
                tx.set("a", await tx.get("a") - 3)
                tx.set("b", 3, ttl=60)
                assert await tx.get("a") == 7  # its own write
                assert await other.get("a") == 10  # not yet committed
                assert await other.get("b") is None
                tx.delete("a")
                assert await tx.get("a", "deleted") == "deleted"
            assert await other.get("a") is None
            assert await other.get("b") == 3


async def test_an_exception_discards_every_write(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        await store.set("a", 1)

        async def fail_midway() -> None:
            async with store.transaction("a", "b") as tx:
                tx.set("a", 2)
                tx.set("b", 2)
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            await fail_midway()
        assert (await store.get("a"), await store.get("b")) == (1, None)
        # The keys were let go: the next transaction gets them at once.
        async with asyncio.timeout(5), store.transaction("a", "b") as tx:
            tx.set("b", await tx.get("a"))
        assert await store.get("b") == 1


async def test_transaction_refuses_keys_outside_its_set(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        async with store.transaction("a") as tx:
            with pytest.raises(ValueError, match="'b' is not one of this transaction's keys"):
                await tx.get("b")
            with pytest.raises(ValueError, match=r"name it in store\.transaction"):
                tx.set("b", 1)
            with pytest.raises(ValueError, match="not one of"):
                tx.delete("b")
            with pytest.raises(RuntimeError, match="do not nest"):
                async with store.transaction("b"):
                    pass
            with pytest.raises(RuntimeError, match="do not nest"):
                await store.set("b", 1)
            tx.set("a", 1)
        with pytest.raises(RuntimeError, match="not open"):
            await tx.get("a")
        assert await store.get("a") == 1


async def test_values_that_are_not_json_are_refused_at_set(backend: str, tmp_path: Path) -> None:
    import datetime

    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        for bad in ({1, 2}, b"bytes", datetime.datetime.now(), {1: "int key"}, object()):
            with pytest.raises(TypeError, match="is not JSON"):
                await store.set("k", bad)
        async with store.transaction("k") as tx:
            with pytest.raises(TypeError, match="state key 'k'"):
                tx.set("k", {"when": datetime.date.today()})
            tx.set("k", "fine")
        assert await store.get("k") == "fine"
        for key in ("", 5, "x" * 513):
            with pytest.raises((TypeError, ValueError)):
                await store.get(key)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ttl"):
            await store.set("k", 1, ttl=0)


async def test_a_held_key_waits_and_times_out_as_conflict(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path, lock_timeout=0.5) as url:
        holder, waiter = open_store(url), open_store(url)
        async with holder, waiter:
            if backend in ("postgresql", "mysql", "redis"):
                # As if in another process: a key queue of its own, so that the wait is the
                # server's lock. (SQLite's key locks, and memory, are per process: both stores
                # wait in the process's one queue for the key.)
                waiter._queues = type(waiter._queues)()
            async with holder.transaction("k") as tx:
                tx.set("k", "held")
                with pytest.raises(StateConflict, match="lock_timeout"):
                    await asyncio.create_task(waiter.delete("k"))  # another task: no nesting
                pending = asyncio.create_task(waiter.update("k", lambda v: f"{v}+w"))
                cancelled = asyncio.create_task(waiter.delete("k"))
                await asyncio.sleep(0.05)
                assert not pending.done()
                cancelled.cancel()  # a waiter that gives up leaves nothing behind
                with pytest.raises(asyncio.CancelledError):
                    await cancelled
            released = time.monotonic()
            # The holder's commit hands the key over (woken, not found by polling: well
            # within Redis's 3 s lease); the waiter sees its write.
            assert await asyncio.wait_for(pending, 5) == "held+w"
            assert time.monotonic() - released < 1.0


async def test_unopened_store_opens_at_first_use_and_closes_twice(
    backend: str, tmp_path: Path
) -> None:
    async with fresh_url(backend, tmp_path) as url:
        store = open_store(url)
        assert isinstance(store, Store) and "password" not in store.url
        await store.set("a", 1)  # opens
        await store.check()
        await store.close()
        await store.close()


async def test_the_sweep_runs_by_itself(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path, purge_interval=0.1) as url, open_store(url) as store:
        for i in range(5):
            await store.set(f"t{i}", i, ttl=0.1)
        await asyncio.sleep(0.5)  # the values expire, then a sweep or more runs
        assert await store.purge() == 0


async def test_more_concurrent_transactions_than_connections_all_commit(
    backend: str, tmp_path: Path
) -> None:
    # 150 keys held at once, past redis-py's default pool of 100 connections (and any SQL
    # pool_size), for longer than a lease renewal: a full pool makes a call wait for a
    # connection, never fails it.
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        held = 1.2 if backend == "redis" else 0.01  # Redis renews its leases every second

        async def bump(n: int) -> None:
            key = f"k{n % 150}"
            async with store.transaction(key) as tx:
                value = await tx.get(key, 0)
                await asyncio.sleep(held)
                tx.set(key, value + 1)

        await asyncio.gather(*(bump(n) for n in range(300)))
        assert sum([await store.get(f"k{n}", 0) for n in range(150)]) == 300
