"""The RQ backend with real processes: a plain ``rq worker`` runs tgrunner's jobs and replies,
``rq info`` sees them, and a job worker SIGKILLed holding jobs has them run again elsewhere
within 10 s, each replied to once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import job_tasks
import pytest
import rq_tasks
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq_support import DB, RQJobs, fresh_queue, queue_name, rq_jobs, sync_redis

import tgrunner
from processes import BotProcess
from tgrunner.jobs import DEFAULT_FAILURE_MESSAGE
from tgrunner.testing import FakeTelegram

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(90)]

HERE = Path(__file__).resolve().parent
SRC = str(Path(tgrunner.__file__).resolve().parents[1])
RQ = str(Path(sys.executable).with_name("rq"))
REDIS = f"redis://127.0.0.1:6379/{DB}"


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_queue()


@pytest.fixture
async def jobs(tg: FakeTelegram, url: str) -> AsyncIterator[RQJobs]:
    job_tasks.reset()
    async with rq_jobs(tg, url) as found:
        yield found


def _env(tg: FakeTelegram) -> dict[str, str]:
    path = os.pathsep.join([SRC, str(HERE), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
        "TGRUNNER_TOKEN": tg.token,
        "TGRUNNER_API_URL": tg.api_url,
    }


async def _start(tg: FakeTelegram, *argv: str) -> BotProcess:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=HERE,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=_env(tg),
    )
    return BotProcess(proc)


async def _rq(tg: FakeTelegram, *argv: str) -> tuple[int, str]:
    """``rq *argv`` to its end: its exit code and its output (stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(
        RQ,
        *argv,
        cwd=HERE,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_env(tg),
    )
    try:
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def _job_worker(jobs: RQJobs, *extra: str) -> BotProcess:
    worker = await _start(
        jobs.tg,
        sys.executable,
        "-m",
        "tgrunner.jobs.process",
        "--jobs",
        jobs.url,
        "--path",
        str(HERE),
        *extra,
    )
    await worker.wait_for_line("ready", timeout=30)
    return worker


@pytest.mark.parametrize("worker_class", ["rq.Worker", "rq.SimpleWorker"])
async def test_a_plain_rq_worker_runs_tgrunners_jobs_and_replies(
    jobs: RQJobs, url: str, worker_class: str
) -> None:
    ann = jobs.tg.user("Ann")
    asked, wrong, again = ann.send("hi?"), ann.send("42?"), ann.send("again?")
    done = await job_tasks.echo.enqueue("hi", reply_to=asked)
    failed = await job_tasks.wrong_type.enqueue(reply_to=wrong)
    replied = await job_tasks.echo.enqueue("twice", reply_to=again)
    # As if an earlier run had replied, then its worker died before RQ recorded the end.
    sync_redis().hset(f"rq:job:{replied.id}", "tgrunner_reply_sent", 1)
    code, log = await _rq(
        jobs.tg, "worker", "--burst", "--url", REDIS, "-w", worker_class, queue_name(url)
    )
    assert code == 0, log
    assert [p["text"] for p in jobs.sent("sendMessage", asked["message_id"])] == ["hi"]
    [failure] = jobs.sent("sendMessage", wrong["message_id"])
    assert failure["text"] == DEFAULT_FAILURE_MESSAGE
    assert jobs.sent("sendMessage", again["message_id"]) == []
    assert await done.result(timeout=1) == "hi"
    r = sync_redis()
    assert RQJob.fetch(failed.id, connection=r).get_status() == JobStatus.FAILED
    assert RQJob.fetch(replied.id, connection=r).get_status() == JobStatus.FINISHED
    for job in (done, failed):
        assert jobs.field(job.id, "tgrunner_reply_sent") == b"1"
    assert "not run again" in log


async def test_a_job_requeued_with_rqs_own_tools_runs_again(jobs: RQJobs, url: str) -> None:
    from rq.registry import FailedJobRegistry

    asked = jobs.tg.user("Ann").send("42?")
    failed = await job_tasks.wrong_type.enqueue(reply_to=asked)
    argv = ("worker", "--burst", "--url", REDIS, "-w", "rq.SimpleWorker", queue_name(url))
    assert (await _rq(jobs.tg, *argv))[0] == 0
    FailedJobRegistry(queue_name(url), connection=sync_redis()).requeue(failed.id)
    code, log = await _rq(jobs.tg, *argv)
    assert code == 0, log
    texts = [p["text"] for p in jobs.sent("sendMessage", asked["message_id"])]
    assert texts == [DEFAULT_FAILURE_MESSAGE] * 2
    assert "not run again" not in log


async def test_rq_info_sees_tgrunners_queue(jobs: RQJobs, url: str) -> None:
    name = queue_name(url)
    started = await job_tasks.echo.enqueue("a")
    await job_tasks.echo.enqueue("b")
    assert await jobs.source.claim("w", 5.0) is not None
    code, out = await _rq(jobs.tg, "info", "--url", REDIS, "--raw", "--only-queues", name)
    assert code == 0, out
    assert f"queue {name} 1, 1 executing, 0 finished, 0 failed" in out
    # rq info cleaned RQ's registries: the started job is still the worker's.
    assert await jobs.source.renew(started.id, "w", 5.0)
    assert await jobs.source.finish(started.id, "w", None, reply_sent=True)
    code, out = await _rq(jobs.tg, "info", "--url", REDIS, "--raw", "--only-queues", name)
    assert f"queue {name} 1, 0 executing, 1 finished, 0 failed" in out


async def test_a_killed_workers_jobs_run_again_within_10_s(jobs: RQJobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = [ann.send(f"q{i}") for i in range(2)]
    ids = [(await rq_tasks.sleepy.enqueue(f"a{i}", reply_to=m)).id for i, m in enumerate(asked)]
    victim = await _job_worker(jobs, "--concurrency", "2")
    survivor: BotProcess | None = None
    try:
        for job_id in ids:
            await victim.wait_for_line(f"started {job_id} 0", timeout=30)
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert await victim.proc.wait() == -signal.SIGKILL
        survivor = await _job_worker(jobs, "--concurrency", "2")
        for job_id in ids:
            await survivor.wait_for_line(f"started {job_id} 1", timeout=15)
        back = time.monotonic() - killed
        for message in asked:
            await jobs.tg.wait_for(
                lambda m=message: bool(jobs.sent("sendMessage", m["message_id"])), timeout=10
            )
        log = await survivor.stop()
        survivor = None
    finally:
        for process in (victim, survivor):
            if process is not None and process.proc.returncode is None:
                process.kill()
                await process.proc.wait()
    assert back < 10.0, f"the jobs came back {back:.1f} s after the kill"
    for i, message in enumerate(asked):
        assert [p["text"] for p in jobs.sent("sendMessage", message["message_id"])] == [f"a{i}"]
    assert len(re.findall(r"lease expired \(death 1 of 3\)", log)) == 2
    for job_id in ids:
        assert jobs.field(job_id, "tgrunner_deaths") == b"1"
