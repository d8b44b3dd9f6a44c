"""Job worker processes (``python -m tgrunner.jobs.process``) on one queue file: SIGKILL
mid-job, SIGTERM within and past the grace, a sync time limit's exit code, burst."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import job_tasks
import pytest
from job_procs import end_workers, start_worker

from tgrunner.jobs.backends.sqlite import SQLiteQueue
from tgrunner.jobs.queue import use_queue
from tgrunner.jobs.worker import EXIT_REPLACE
from tgrunner.testing import FakeTelegram, RecordedRequest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

RUNNING = re.compile(r"(?:still )?running in (\d+)")


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SQLiteQueue]:
    path = tmp_path / "jobs.sqlite"
    q = SQLiteQueue(f"sqlite:///{path}", path)
    use_queue(q)
    try:
        yield q
    finally:
        use_queue(None)
        await end_workers()
        await q.close()


def running_in(call: RecordedRequest) -> int | None:
    found = RUNNING.fullmatch(str(call.params.get("text", "")))
    return int(found.group(1)) if found else None


async def test_a_killed_workers_job_runs_again_within_10_s(
    tg: FakeTelegram, queue: SQLiteQueue
) -> None:
    path = queue.store.path
    workers = [await start_worker(tg, path) for _ in range(2)]
    asked = tg.user("Ann").send("work")
    job = await job_tasks.marked.enqueue(2.0, "done", reply_to=asked)
    first = await tg.wait_for_call("sendMessage", where=lambda r: running_in(r) is not None)
    victim = running_in(first)
    assert victim in {w.proc.pid for w in workers}
    # Its second progress is an edit: the status message is recorded with the job by then.
    await tg.wait_for_call("editMessageText", where=lambda r: running_in(r) == victim)
    os.kill(victim, signal.SIGKILL)  # mid-job: the reply is not sent yet
    killed = time.time()
    # The other worker takes it once the lease (5 s) runs out, and edits the same status
    # message: "running in <its pid>".
    again = await tg.wait_for_call(
        "editMessageText", where=lambda r: running_in(r) not in (None, victim), timeout=15
    )
    assert again.time - killed < 10
    assert again.params["message_id"] == first.response["message_id"]
    done = await tg.wait_for_call(
        "editMessageText", where=lambda r: r.params.get("text") == "done", timeout=10
    )
    assert done.params["message_id"] == first.response["message_id"]
    assert await job.result(timeout=10) == "done"
    record = queue.store.get(job.id)
    assert record is not None and (record.state, record.deaths) == ("finished", 1)
    # One reply (the status message, edited into the result), nothing sent twice.
    assert len([r for r in tg.calls("sendMessage") if r.ok]) == 1
    survivor = next(w for w in workers if w.proc.pid != victim)
    await survivor.stop()


async def test_sigterm_lets_a_running_job_finish_within_the_grace(
    tg: FakeTelegram, queue: SQLiteQueue
) -> None:
    worker = await start_worker(tg, queue.store.path, "--grace", "20")
    job = await job_tasks.marked.enqueue(1.0, "finished anyway", reply_to=tg.user("A").send("x"))
    await tg.wait_for_call("sendMessage", where=lambda r: running_in(r) is not None)
    log = await worker.stop()  # exit 0, no traceback
    assert "stopping" in log
    assert await job.result(timeout=1) == "finished anyway"


async def test_sigterm_past_the_grace_gives_the_job_back_at_once(
    tg: FakeTelegram, queue: SQLiteQueue
) -> None:
    worker = await start_worker(tg, queue.store.path, "--grace", "0.5")
    job = await job_tasks.marked.enqueue(60.0, "never", reply_to=tg.user("A").send("x"))
    await tg.wait_for_call("sendMessage", where=lambda r: running_in(r) is not None)
    began = time.monotonic()
    log = await worker.stop()
    assert time.monotonic() - began < 5
    assert "given back" in log
    record = queue.store.get(job.id)
    assert record is not None
    assert (record.state, record.lease_owner, record.deaths) == ("queued", None, 0)


async def test_a_sync_time_limit_exits_to_be_replaced(tg: FakeTelegram, queue: SQLiteQueue) -> None:
    worker = await start_worker(tg, queue.store.path)
    job = await job_tasks.slow_sync.enqueue(60.0, reply_to=tg.user("A").send("x"))
    code, log = await worker.finish(timeout=20)
    assert code == EXIT_REPLACE, log
    assert "to be replaced" in log
    assert await job.status() == "failed"
    assert [r.params["text"] for r in tg.calls("sendMessage")] == ["too slow"]


async def test_burst_drains_then_exits(tg: FakeTelegram, queue: SQLiteQueue) -> None:
    ann = tg.user("Ann")
    jobs = [await job_tasks.echo.enqueue(f"n{i}", reply_to=ann.send(f"q{i}")) for i in range(10)]
    worker = await start_worker(tg, queue.store.path, "--burst", "--concurrency", "3", ready=False)
    code, log = await worker.finish(timeout=30)
    assert code == 0, log
    assert [await job.result(timeout=1) for job in jobs] == [f"n{i}" for i in range(10)]
    assert len(tg.calls("sendMessage")) == 10


async def test_bad_arguments_exit_2(tg: FakeTelegram, tmp_path: Path) -> None:
    worker = await start_worker(tg, tmp_path / "no" / "such" / "jobs.sqlite", ready=False)
    code, log = await worker.finish(timeout=20)
    assert code == 2 and "folder of the SQLite file does not exist" in log
    assert "Traceback" not in log
