"""Doorbells (wake-ups between processes) and SQLiteSource.wait: woken by a commit in another
connection, by a retry's time, by a lease's end; polling where asked."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tgrunner._doorbell import Doorbell, Listener, wake_folder
from tgrunner.jobs.backends.sqlite import SQLiteSource
from tgrunner.jobs.store import JobStore

pytestmark = pytest.mark.timeout(10)

FN = "job_tasks:echo"


async def test_a_ring_wakes_every_listener(tmp_path: Path) -> None:
    folder = tmp_path / "jobs.sqlite.wake"
    first, second = Listener(folder), Listener(folder)
    try:
        assert not await first.wait(0.01)  # nothing rang
        waiting = asyncio.create_task(first.wait(5))
        await asyncio.sleep(0)
        assert Doorbell(folder).ring() == 2
        assert await waiting
        assert await second.wait(0)  # rung while it was not waiting: not lost
        assert not await second.wait(0)  # drained
    finally:
        first.close()
        second.close()
    assert sorted(os.listdir(folder)) == []


async def test_a_dead_listener_is_cleared_and_a_new_one_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    os.mkfifo(folder / "123-dead")  # a process killed while listening: nobody reads it
    os.mkfifo(folder / ".456-new")  # being created: not rung, not removed
    assert Doorbell(folder).ring() == 0
    assert sorted(os.listdir(folder)) == [".456-new"]
    assert Doorbell(tmp_path / "none").ring() == 0  # no folder: no worker ever waited


async def test_wait_returns_when_another_connection_enqueues(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    source = SQLiteSource(f"sqlite:///{path}", path)
    assert source.waits_on_fifo
    try:
        with JobStore(path) as bot_side:
            waiting = asyncio.create_task(source.wait(5))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            began = time.monotonic()
            await asyncio.to_thread(bot_side.enqueue, FN, b"[]")
            await waiting
            assert time.monotonic() - began < 1
            assert await source.claim("w1", 5) is not None
    finally:
        await source.close()
    assert os.listdir(wake_folder(path)) == []


async def test_wait_wakes_when_a_retry_or_a_lease_comes_due(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    source = SQLiteSource(f"sqlite:///{path}", path)
    try:
        store = source.store
        retried = store.enqueue(FN, b"[]", retries=1)
        held = store.enqueue(FN, b"[]")
        assert store.claim("w1", lease_seconds=5) is not None
        assert store.claim("dead", lease_seconds=0.6) is not None
        assert store.fail(retried, "w1", "boom", retry_delay=0.3)
        began = time.monotonic()
        await source.wait(0.01)  # the rings of the commits above: at once
        await source.wait(5)  # the retry's time
        assert 0.25 < time.monotonic() - began < 0.6
        claim = await source.claim("w1", 5)
        assert claim is not None and claim.id == retried
        await source.wait(5)  # the dead worker's lease's end
        assert 0.45 < time.monotonic() - began < 1.0
        claim = await source.claim("w1", 5)
        assert claim is not None and (claim.id, claim.deaths) == (held, 1)
    finally:
        await source.close()


async def test_a_renewed_lease_does_not_end_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    source = SQLiteSource(f"sqlite:///{path}", path)
    try:
        job_id = source.store.enqueue(FN, b"[]")
        assert source.store.claim("w1", lease_seconds=0.2) is not None
        await source.wait(0.01)  # the enqueue's ring: at once
        began = time.monotonic()
        waiting = asyncio.create_task(source.wait(0.8))
        await asyncio.sleep(0.1)
        assert source.store.renew(job_id, "w1", lease_seconds=5)
        await waiting
        assert time.monotonic() - began >= 0.75  # slept on to its timeout
    finally:
        await source.close()


async def test_poll_mode_waits_briefly(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    source = SQLiteSource(f"sqlite:///{path}", path, wake="poll")
    try:
        assert not source.waits_on_fifo
        began = time.monotonic()
        await source.wait(5)
        assert time.monotonic() - began < 0.05  # 5 ms at first
        assert not wake_folder(path).exists()
    finally:
        await source.close()
