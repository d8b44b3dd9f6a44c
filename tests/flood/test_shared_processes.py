"""Real processes on one set of shared buckets (a file, or Redis): three reserving at once
never pass the bound together and lose no reservation; a pause set by one holds the others;
a process SIGKILLed in the middle of its reservations, or while it holds the file's lock,
wedges nobody, and the file opens fine after."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from shared_support import REDIS_URL, redis_prefix, worst_window

from services import need_service
from tgrunner.flood import Rate
from tgrunner.flood.backends.file import FileBuckets
from tgrunner.flood.shared import open_shared

CHILD = Path(__file__).with_name("shared_child.py")
SRC = Path(__file__).parents[2] / "src"

_started: list[asyncio.subprocess.Process] = []


async def child(*args: object, code: str | None = None) -> asyncio.subprocess.Process:
    """``shared_child.py ARGS`` (or ``python -c CODE``), its pipes ours; ended by the test."""
    command = ["-c", code] if code is not None else [str(CHILD), *map(str, args)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )  # fmt: skip
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
async def _end_children() -> AsyncIterator[None]:
    yield
    while _started:
        proc = _started.pop()
        if proc.returncode is None:
            proc.kill()  # only the processes this test started
        await proc.communicate()


async def line(proc: asyncio.subprocess.Process, timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        text = (await proc.stdout.readline()).decode().strip()
    if not text:
        assert proc.stderr is not None
        raise AssertionError(f"the child ended: {(await proc.stderr.read()).decode()}")
    return text


async def output(proc: asyncio.subprocess.Process, timeout: float = 20.0) -> str:
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@contextmanager
def store(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The URL and key prefix of a fresh store of ``backend``."""
    if backend == "file":
        yield f"file://{tmp_path}/flood.buckets", ""
        return
    need_service("redis")
    with redis_prefix() as prefix:
        yield REDIS_URL, prefix


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("backend", "n"), [("file", 20_000), ("redis", 400)])
async def test_three_processes_together_keep_the_bound_and_lose_no_slot(
    backend: str, n: int, tmp_path: Path
) -> None:
    rate = Rate(1000.0, burst=20)
    with store(backend, tmp_path) as (url, prefix):
        procs = [
            await child("reserve", url, prefix, "bulk", rate.per_second, rate.burst, n)
            for _ in range(3)
        ]
        for proc in procs:
            assert await line(proc) == "ready"
        for proc in procs:  # at once: every reservation of the three overlaps the others'
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
        spans = [tuple(s) for proc in procs for s in json.loads(await output(proc))]
        assert len(spans) == 3 * n
        assert worst_window(spans, rate) <= 1e-6
        # Booked ahead all along, the bucket moved one interval per reservation: the next
        # slot is exactly 3n intervals (less the burst's tolerance) after the first call.
        buckets = open_shared(url, prefix=prefix or None)
        now = time.monotonic if backend == "file" else time.time
        before = now()
        wait = await buckets.reserve("bulk", rate)
        after = now()
        await buckets.close()
        first = min(spans)
        slots = (
            (before + wait + rate.tolerance - first[1]) * rate.per_second,
            (after + wait + rate.tolerance - first[0]) * rate.per_second,
        )
        assert slots[0] - 0.5 < 3 * n < slots[1] + 0.5, slots


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["file", "redis"])
async def test_a_pause_set_by_one_process_holds_the_others(backend: str, tmp_path: Path) -> None:
    rate = Rate(1000.0, burst=5)
    with store(backend, tmp_path) as (url, prefix):
        pauser = await child("pause", url, prefix, "chat:7", 30.0)
        set_before, set_after = json.loads(await output(pauser))
        others = [await child("reserve", url, prefix, "chat:7", 1000.0, 5, 10) for _ in range(2)]
        for proc in others:
            assert await line(proc) == "ready"
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
        for proc in others:
            for lo, hi in json.loads(await output(proc)):
                assert hi >= set_before + 30.0 - 2e-6, "no call leaves before the pause ends"
                assert lo <= set_after + 30.0 + 1.0, "and they leave once it is over"
        buckets = open_shared(url, prefix=prefix or None)
        assert await buckets.reserve("chat:8", rate) == 0.0  # other keys are not held
        await buckets.close()


@pytest.mark.timeout(60)
async def test_processes_killed_among_their_reservations_wedge_nobody(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/flood.buckets"
    survivor = await child("loop", url, "", "bulk")
    assert await line(survivor) == "running"
    for _ in range(6):
        victim = await child("loop", url, "", "bulk")
        assert await line(victim) == "running"
        await asyncio.sleep(random.uniform(0, 0.03))  # somewhere in its reservations
        victim.kill()
        await victim.communicate()
        assert victim.returncode == -9
        killed = time.monotonic()
        async with asyncio.timeout(5):  # the survivor goes on: a count made after the kill
            while float((await line(survivor)).split()[1]) <= killed:
                pass
    survivor.kill()
    await survivor.communicate()
    buckets = FileBuckets(tmp_path / "flood.buckets")  # opens fine: nothing to repair
    assert await buckets.reserve("bulk", Rate(1e6)) < 1.0
    assert await buckets.reserve("fresh", Rate(1.0, burst=2)) == 0.0
    assert await buckets.reserve("fresh", Rate(1.0, burst=2)) == 0.0
    assert await buckets.reserve("fresh", Rate(1.0, burst=2)) == pytest.approx(1.0, abs=0.01)
    await buckets.close()


@pytest.mark.timeout(30)
async def test_a_process_killed_holding_the_lock_lets_the_others_go_on(tmp_path: Path) -> None:
    path = tmp_path / "flood.buckets"
    buckets = FileBuckets(path)
    holder = await child(
        code=(
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n"
        )
    )
    assert await line(holder) == "locked"
    loop = asyncio.get_running_loop()
    reserving = loop.run_in_executor(None, buckets.reserve_now, "bulk", Rate(30.0))
    done, _ = await asyncio.wait([reserving], timeout=0.3)
    assert not done, "a reservation waits for the lock's holder"
    holder.kill()  # dies holding it: the kernel lets go
    await holder.communicate()
    assert await asyncio.wait_for(reserving, 5) == 0.0
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free
    finally:
        os.close(fd)
    await buckets.close()
