"""FileBuckets, the buckets of one machine's processes: what the file holds, what it refuses,
how it starts again after a reboot or a torn start, a full table, and a fork."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from shared_support import Clock

from tgrunner.errors import ConfigError, FloodStoreUnavailable
from tgrunner.flood import Rate
from tgrunner.flood.backends import file as filebackend
from tgrunner.flood.backends.file import SLOTS, FileBuckets
from tgrunner.protocols import SharedBuckets

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "flood.buckets"


async def test_a_burst_leaves_at_once_then_the_rate_holds_and_a_pause_wins(path: Path) -> None:
    clock = Clock(100.0)
    buckets = FileBuckets(path, clock=clock)
    assert isinstance(buckets, SharedBuckets)
    rate = Rate(2.0, burst=3)
    assert [await buckets.reserve("bulk", rate) for _ in range(5)] == [0, 0, 0, 0.5, 1.0]
    await buckets.pause("bulk", 50.0)
    await buckets.pause("bulk", 10.0)  # an earlier end does not shorten it
    assert await buckets.reserve("bulk", rate) == 50.0
    await buckets.pause("other", 0)  # nothing to hold
    await buckets.pause("other", -5)
    assert await buckets.reserve("other", rate) == 0.0
    with pytest.raises(ValueError, match="finite"):
        await buckets.pause("bulk", math.nan)
    await buckets.close()
    await buckets.close()
    with pytest.raises(RuntimeError, match="closed"):
        await buckets.reserve("bulk", rate)


async def test_the_file_is_small_and_a_second_opener_sees_the_same_buckets(path: Path) -> None:
    clock = Clock()
    first, second = FileBuckets(path, clock=clock), FileBuckets(path, clock=clock)
    rate = Rate(1.0, burst=1)
    assert await first.reserve("paid", rate) == 0.0
    assert await second.reserve("paid", rate) == 1.0
    await second.pause("paid", 30.0)
    assert await first.reserve("paid", rate) == 30.0
    await first.close()
    await second.close()
    reopened = FileBuckets(path, clock=clock)  # the buckets live in the file, not a process
    assert await reopened.reserve("paid", rate) == 31.0
    await reopened.close()


async def test_keys_of_any_length_are_kept_apart(path: Path) -> None:
    buckets = FileBuckets(path, clock=Clock())
    rate = Rate(1.0)
    keys = ["", "a", "a" * 30, "a" * 31, "a" * 32, "a" * 200, "b" * 200, "ключ", "a\x00"]
    assert [await buckets.reserve(k, rate) for k in keys] == [0.0] * len(keys)
    assert [await buckets.reserve(k, rate) for k in keys] == [1.0] * len(keys)
    await buckets.close()


async def test_a_full_table_fails_clearly_and_idle_buckets_make_room(path: Path) -> None:
    clock = Clock()
    buckets = FileBuckets(path, clock=clock)
    for n in range(SLOTS):
        await buckets.pause(f"chat:{n}", 5.0)
    with pytest.raises(FloodStoreUnavailable, match=f"no free slot: all {SLOTS}"):
        await buckets.reserve("bulk", Rate(30.0))
    assert await buckets.reserve("chat:7", Rate(1.0)) == 5.0  # the busy ones still answer
    clock.now += 5.0  # every pause is over: their buckets are the same as new ones
    assert await buckets.reserve("bulk", Rate(30.0)) == 0.0
    assert await buckets.reserve("chat:7", Rate(1.0)) == 1.0  # still busy: kept
    await buckets.close()


def test_a_file_that_is_not_a_bucket_file_is_refused_and_left_alone(path: Path) -> None:
    asyncio.run(FileBuckets(path.with_name("ours")).close())
    assert path.with_name("ours").stat().st_size < 16 * 1024  # a few pages
    path.write_bytes(b"my notes\n" * 100)
    with pytest.raises(ConfigError, match="not a flood bucket file"):
        FileBuckets(path)
    assert path.read_bytes() == b"my notes\n" * 100
    with pytest.raises(ConfigError, match="writable path"):
        FileBuckets(path.parent / "missing" / "flood.buckets")


def _rewrite_header(path: Path, **changes: object) -> None:
    with path.open("r+b") as f:
        head = f.read(filebackend._HEADER.size)
        names = ("magic", "version", "slots", "boot", "boot_time")
        fields = dict(zip(names, filebackend._HEADER.unpack(head), strict=True))
        fields.update(changes)
        f.seek(0)
        f.write(filebackend._HEADER.pack(*fields.values()))


@pytest.mark.parametrize(
    "change",
    [{"boot": os.urandom(16)}, {"magic": bytes(7)}, {"version": 99}],
    ids=["another boot", "a torn start", "another version"],
)
async def test_a_file_of_another_boot_or_version_or_cut_short_starts_empty(
    path: Path, change: dict, caplog: pytest.LogCaptureFixture
) -> None:
    buckets = FileBuckets(path)
    await buckets.pause("bulk", 3600.0)
    await buckets.close()
    _rewrite_header(path, **change)
    caplog.set_level(logging.WARNING, "tgrunner.flood")
    again = FileBuckets(path)  # held for an hour by a time of another boot: let go
    assert await again.reserve("bulk", Rate(1.0)) == 0.0
    await again.close()
    warned = any("another version" in r.getMessage() for r in caplog.records)
    assert warned == ("version" in change)


def _reserve_many(buckets: FileBuckets, n: int, ready: Any) -> None:
    ready.set()
    for _ in range(n):
        buckets.reserve_now("bulk", Rate(1000.0))


def test_a_forked_child_takes_its_own_lock(path: Path) -> None:
    """An flock inherited through fork would be shared with the parent and exclude nothing;
    the child reopens the file. Two processes reserving at once lose no reservation: the last
    slot is exactly as many intervals after the first as there were reservations."""
    buckets = FileBuckets(path)
    n, lead, rate = 20_000, 500, Rate(1000.0)
    before = time.monotonic()
    assert buckets.reserve_now("bulk", rate) == 0.0
    first = (before, time.monotonic())
    for _ in range(lead - 1):  # half a second booked ahead: the bucket never runs dry
        buckets.reserve_now("bulk", rate)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_reserve_many, args=(buckets, n, ready))
    child.start()
    assert ready.wait(10)
    for _ in range(n):
        buckets.reserve_now("bulk", rate)
    child.join(20)
    assert child.exitcode == 0
    before = time.monotonic()
    wait = buckets.reserve_now("bulk", rate)
    last = (before + wait, time.monotonic() + wait)
    # The last call's slot is the first's plus one interval per reservation (none lost).
    slots = ((last[0] - first[1]) * 1000.0, (last[1] - first[0]) * 1000.0)
    assert slots[0] - 0.5 < lead + 2 * n < slots[1] + 0.5, slots
    asyncio.run(buckets.close())
