"""A hypothesis property over real job worker processes: random job durations, failures and
worker deaths (SIGKILL by PID, the worker started again at once). Every job ends in exactly
one final state with exactly one reply; a second reply only where a kill fell between the
first reply and the job's recorded end; none only for a job failed by its worker's deaths
whose failure message was being sent by a worker killed after it took the job on."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import job_tasks
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from job_procs import end_workers, start_worker

from processes import BotProcess
from tgrunner.jobs import DEATHS_ERROR, FINAL_STATES, JobRecord
from tgrunner.jobs.backends.sqlite import SQLiteQueue
from tgrunner.jobs.queue import use_queue
from tgrunner.testing import FakeTelegram

WORKER_ARGS = ("--lease", "1", "--renew-every", "0.3", "--concurrency", "2", "--grace", "10")
SLOTS = 2  # --concurrency
# (seconds, tries that fail): 3 failing tries is every try of chaos (retries=2).
JOBS = st.lists(
    st.tuples(st.sampled_from([0.0, 0.05, 0.3, 0.8]), st.sampled_from([0, 0, 0, 1, 3])),
    min_size=4,
    max_size=12,
)
KILLS = st.lists(st.tuples(st.floats(0.05, 0.8), st.integers(0, 1)), min_size=1, max_size=4)
EPSILON = 0.05  # seconds of clock skew allowed between the record, the kills and ended_at


async def scenario(
    folder: Path, jobs: list[tuple[float, int]], kills: list[tuple[float, int]]
) -> None:
    async with FakeTelegram() as tg:
        path = folder / "jobs.sqlite"
        queue = SQLiteQueue(f"sqlite:///{path}", path)
        use_queue(queue)
        try:
            await run(tg, queue, jobs, kills)
        finally:
            use_queue(None)
            await end_workers()
            await queue.close()


async def run(
    tg: FakeTelegram,
    queue: SQLiteQueue,
    jobs: list[tuple[float, int]],
    kills: list[tuple[float, int]],
) -> None:
    path = queue.store.path
    workers: list[BotProcess] = [await start_worker(tg, path, *WORKER_ARGS) for _ in range(2)]
    user = tg.user("P")
    asked, ids = [], []
    for i, (seconds, fails) in enumerate(jobs):
        message = user.send(f"q{i}")
        asked.append(message["message_id"])
        ids.append((await job_tasks.chaos.enqueue(seconds, fails, f"job {i}", reply_to=message)).id)
    killed_at: list[float] = []
    for delay, victim in kills:
        await asyncio.sleep(delay)  # the kill schedule is a time schedule, by design
        os.kill(workers[victim].proc.pid, signal.SIGKILL)
        killed_at.append(time.time())
        await workers[victim].proc.wait()
        workers[victim] = await start_worker(tg, path, *WORKER_ARGS)
    # Another process's commits wake nothing here: look at the file until every job ended.
    async with asyncio.timeout(60):
        while True:
            records = [queue.store.get(job_id) for job_id in ids]
            if all(r is not None and r.state in FINAL_STATES and r.reply_sent for r in records):
                break
            await asyncio.sleep(0.05)
    for worker in workers:
        # A clean stop: exit 0, and a message being sent goes out. (Their logs hold the
        # tracebacks of the failing tries.)
        worker.send_signal(signal.SIGTERM)
        code, log = await worker.finish()
        assert code == 0, log
    check(tg, jobs, asked, records, killed_at)


def check(
    tg: FakeTelegram,
    jobs: list[tuple[float, int]],
    asked: list[int],
    records: list[JobRecord | None],
    killed_at: list[float],
) -> None:
    duplicates = 0
    for (_, fails), message_id, record in zip(jobs, asked, records, strict=True):
        assert record is not None
        state, error, ended = record.state, record.error, record.ended_at or 0.0
        died = state == "failed" and error == DEATHS_ERROR
        if not died:
            assert state == ("failed" if fails == 3 else "finished"), (record, fails)
        i = asked.index(message_id)
        expected = "it failed" if state == "failed" else f"job {i}"
        replies = [r for r in tg.calls("sendMessage") if r.ok
                   and r.params["reply_parameters"]["message_id"] == message_id]  # fmt: skip
        assert {r.params["text"] for r in replies} <= {expected}, (replies, record)
        if not replies:
            # Only the sweep marks the reply sent before sending it.
            assert died and any(k >= ended - EPSILON for k in killed_at), record
            continue
        first = replies[0].time
        window = [k for k in killed_at if first - EPSILON <= k <= ended + EPSILON]
        assert len(replies) - 1 <= len(window), (replies, record, killed_at)
        duplicates += len(replies) - 1
    assert duplicates <= len(killed_at) * SLOTS


@pytest.mark.slow
@pytest.mark.timeout(600)
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(jobs=JOBS, kills=KILLS)
@example(jobs=[(0.8, 0), (0.8, 1), (0.8, 3), (0.3, 0)] * 2, kills=[(0.4, 0), (0.2, 1), (0.3, 0)])
def test_every_job_ends_once_with_one_reply(
    jobs: list[tuple[float, int]], kills: list[tuple[float, int]]
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="jobs-property-"))
    try:
        asyncio.run(scenario(folder, jobs, kills))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
