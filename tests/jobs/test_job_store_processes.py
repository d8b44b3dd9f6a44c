"""Two worker processes share one job store; one is SIGKILLed holding a job."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

import tgrunner
from tgrunner.jobs import JobStore

LEASE = 0.5
JOBS = 200
HOLD_AFTER = 10
SRC = str(Path(tgrunner.__file__).resolve().parents[1])

# A job worker: waits for "go" on stdin, then claims and finishes jobs until none is left
# anywhere (queued, scheduled or started). With hold_after >= 0 it stops, holding its next
# job, after that many: the test kills it there.
WORKER = """
import sys, time
from tgrunner.jobs import JobStore

path, owner, hold_after, lease = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = JobStore(path)
print("ready", flush=True)
sys.stdin.readline()
done = 0
while True:
    job = store.claim(owner, lease_seconds=lease)
    if job is None:
        counts = store.counts()
        if counts["queued"] + counts["scheduled"] + counts["started"] == 0:
            break
        time.sleep(0.01)  # a live lease elsewhere: look again soon
        continue
    print("claimed", job.id, flush=True)
    if done == hold_after:
        print("holding", job.id, flush=True)
        time.sleep(3600)
    if store.finish(job.id, owner, b"null", reply_sent=True):
        print("finished", job.id, flush=True)
    done += 1
    # The job's "work": SQLite's busy wait is not fair, and a worker that only claims in a
    # tight loop could starve the other one.
    time.sleep(0.001)
store.close()
"""


class Worker:
    """One worker process and the lines it printed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[tuple[str, str]] = []
        self.ready = asyncio.Event()
        self.holding = asyncio.Event()
        self.working = asyncio.Event()  # it finished a job
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            word, _, rest = raw.decode().strip().partition(" ")
            self.lines.append((word, rest))
            if word == "ready":
                self.ready.set()
            elif word == "holding":
                self.holding.set()
            elif word == "finished":
                self.working.set()

    def ids(self, word: str) -> list[str]:
        return [rest for w, rest in self.lines if w == word]

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")


async def start_worker(path: Path, owner: str, hold_after: int) -> Worker:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        str(path),
        owner,
        str(hold_after),
        str(LEASE),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    return Worker(proc)


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_killed_worker_job_is_redone_by_the_other(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    store = JobStore(path)
    victim = await start_worker(path, "victim", HOLD_AFTER)
    survivor = await start_worker(path, "survivor", -1)
    workers = (victim, survivor)
    try:
        async with asyncio.timeout(20):
            await asyncio.gather(victim.ready.wait(), survivor.ready.wait())
        ids = {store.enqueue("tests.jobs:noop", b"[]") for _ in range(JOBS)}
        # The victim starts first: a survivor quick off the mark could do all 200 jobs
        # before the victim took one (seen once).
        victim.go()
        async with asyncio.timeout(20):
            await victim.working.wait()
        survivor.go()
        async with asyncio.timeout(20):
            holding = asyncio.create_task(victim.holding.wait())
            await asyncio.wait([holding, victim.reader], return_when=asyncio.FIRST_COMPLETED)
        assert victim.holding.is_set(), f"the victim exited holding nothing: {victim.lines}"
        held = victim.ids("holding")[0]
        os.kill(victim.proc.pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            assert await victim.proc.wait() == -signal.SIGKILL
            assert await survivor.proc.wait() == 0
            await asyncio.gather(victim.reader, survivor.reader)
    finally:
        for w in workers:
            if w.proc.returncode is None:
                w.proc.kill()
                await w.proc.wait()
            w.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w.reader

    finished = Counter(victim.ids("finished") + survivor.ids("finished"))
    assert set(finished) == ids
    assert set(finished.values()) == {1}  # every job finished exactly once
    # (Fewer than HOLD_AFTER only if a stall past its lease let the survivor take one over.)
    assert 0 < len(victim.ids("finished")) <= HOLD_AFTER and survivor.ids("finished")
    # The held job was taken again, after its lease expired, and finished by the survivor.
    assert held not in victim.ids("finished")
    assert held in survivor.ids("claimed") and held in survivor.ids("finished")
    job = store.get(held)
    assert job is not None
    assert (job.state, job.deaths, job.lease_owner, job.reply_sent) == (
        "finished",
        1,
        None,
        True,
    )
    assert store.counts()["finished"] == JOBS
    store.close()
