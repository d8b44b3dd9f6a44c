"""How the embedded queue meets SQLite: group-committed enqueues (SQLiteQueue), and store calls
on an event loop with no thread (JobStore.run) that wait for a busy file without blocking it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tgrunner.errors import ConfigError, QueueUnavailable
from tgrunner.jobs.backends.sqlite import SQLiteQueue
from tgrunner.jobs.queue import JobRequest
from tgrunner.jobs.store import JobStore, new_job

pytestmark = pytest.mark.timeout(20)

FN = "job_tasks:echo"


def wal_frames(path: Path) -> int:
    """Frames in the file's write-ahead log: each commit appends its pages there."""
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


async def test_concurrent_enqueues_are_written_together_in_order(tmp_path: Path) -> None:
    frames = {}
    for how in ("one by one", "at once"):
        path = tmp_path / f"{how}.sqlite"
        queue = SQLiteQueue(f"sqlite:///{path}", path)
        try:
            requests = [JobRequest(FN, str(i).encode()) for i in range(100)]
            if how == "at once":
                ids = await asyncio.gather(*(queue.enqueue(r) for r in requests))
            else:
                ids = [await queue.enqueue(r) for r in requests]
            assert len(set(ids)) == 100
            stored = [job.args for job in reversed(queue.store.listing("queued", limit=100))]
            assert stored == [str(i).encode() for i in range(100)]
            frames[how] = wal_frames(path)
        finally:
            await queue.close()
    # A hundred commits of their own, against a few shared ones.
    assert frames["at once"] * 5 < frames["one by one"], frames


async def test_a_bad_request_is_refused_alone(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    queue = SQLiteQueue(f"sqlite:///{path}", path)
    try:
        good = asyncio.create_task(queue.enqueue(JobRequest(FN, b"")))
        with pytest.raises(ConfigError, match="retries must be 0 or more"):
            await queue.enqueue(JobRequest(FN, b"", retries=-1))
        assert queue.store.get(await good) is not None
    finally:
        await queue.close()


async def test_an_enqueue_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    queue = SQLiteQueue(f"sqlite:///{path}", path)
    queue.store.close()
    with pytest.raises(QueueUnavailable, match="cannot be written: the job store is closed"):
        await queue.enqueue(JobRequest(FN, b""))
    await queue.close()


def test_enqueue_many_writes_in_one_transaction(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        jobs = [new_job(FN, bytes([i]), retries=i) for i in range(3)]
        store.enqueue_many(jobs)
        for job in jobs:
            record = store.get(job.id)
            assert record is not None and record.max_retries == job.retries


async def test_run_waits_for_a_busy_file_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store:
        job_id = store.enqueue(FN, b"")
        assert store.claim("w1") is not None
        locked, release = threading.Event(), threading.Event()

        def hold_the_write_lock() -> None:  # another process, as SQLite sees it
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(5)
            db.execute("ROLLBACK")
            db.close()

        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        await asyncio.to_thread(locked.wait, 5)
        renewal = asyncio.create_task(store.run(store.renew, job_id, "w1"))
        ticks = 0
        began = time.monotonic()
        while time.monotonic() - began < 0.3:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not renewal.done()  # still waiting for the lock…
        assert ticks >= 15  # …and the loop ran all along
        release.set()
        assert await renewal
        await asyncio.to_thread(holder.join)


async def test_run_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path, busy_timeout=0.1) as store:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(sqlite3.OperationalError, match=r"busy for more than 0\.1 s"):
                await store.run(store.enqueue, FN, b"")
        finally:
            db.execute("ROLLBACK")
            db.close()
