"""The job worker on the RQ backend, in this process, against the real Redis and FakeTelegram:
replies, retries, the failure message, progress, deaths, a clean stop, several workers."""

from __future__ import annotations

import asyncio
import pickle
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import job_tasks
import pytest
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq_support import RQJobs, fresh_queue, rq_jobs, sync_redis

from tgrunner.errors import JobFailed
from tgrunner.jobs import DEATHS_ERROR, MAX_DEATHS
from tgrunner.jobs.backends.rq_source import RQSource
from tgrunner.testing import FakeTelegram

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_queue()


@pytest.fixture
async def jobs(tg: FakeTelegram, url: str) -> AsyncIterator[RQJobs]:
    job_tasks.reset()
    async with rq_jobs(tg, url) as found:
        yield found
    job_tasks.gate.set()


async def test_a_job_replies_and_ends_finished_in_rq(jobs: RQJobs) -> None:
    asked = jobs.tg.user("Ann").send("say hi")
    job = await job_tasks.echo.enqueue("hi", reply_to=asked)
    worker = await jobs.drain()
    [sent] = jobs.sent("sendMessage", asked["message_id"])
    assert sent["text"] == "hi"
    assert await job.result(timeout=1) == "hi"
    rq_job = RQJob.fetch(job.id, connection=sync_redis())
    assert rq_job.get_status() == JobStatus.FINISHED and rq_job.return_value() == "hi"
    assert jobs.field(job.id, "tgrunner_reply_sent") == b"1"
    assert worker.stats.finished == 1


async def test_retries_back_off_then_succeed(jobs: RQJobs) -> None:
    asked = jobs.tg.user("Ann").send("try")
    job = await job_tasks.flaky.enqueue(2, "made it", reply_to=asked)
    worker = await jobs.drain()
    [reply] = jobs.sent("sendMessage", asked["message_id"])
    assert reply["text"] == "made it on try 3"
    info = await jobs.queue.info(job.id)
    assert info is not None and (info.state, info.attempts) == ("finished", 2)
    assert (worker.stats.retried, worker.stats.finished) == (2, 1)


async def test_the_failure_message_once_after_the_last_retry(jobs: RQJobs) -> None:
    asked = jobs.tg.user("Ann").send("try")
    job = await job_tasks.flaky.enqueue(9, "never", reply_to=asked)
    await jobs.drain()
    [reply] = jobs.sent("sendMessage", asked["message_id"])
    assert reply["text"] == "gave up"
    with pytest.raises(JobFailed, match="try 3 fails"):
        await job.result(timeout=1)
    assert RQJob.fetch(job.id, connection=sync_redis()).get_status() == JobStatus.FAILED
    assert await jobs.source.unreplied() == []


async def test_progress_edits_one_status_message(jobs: RQJobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("work")
    job = await job_tasks.progressing.enqueue(3, reply_to=asked)
    await jobs.drain()
    status_id = jobs.tg.replies(ann.chat.id)[0]["message_id"]
    assert [e["text"] for e in jobs.sent("editMessageText")] == ["66%", "100%", "all done"]
    assert jobs.field(job.id, "tgrunner_status_message_id") == str(status_id).encode()


async def test_a_dead_workers_job_runs_again_and_replies_once(jobs: RQJobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.echo.enqueue("back", reply_to=asked)
    assert await jobs.source.claim("dead", 0.2) is not None  # then its worker died
    await jobs.source.wait(5.0)  # until its lease ran out
    await jobs.drain()
    assert [p["text"] for p in jobs.sent("sendMessage", asked["message_id"])] == ["back"]
    assert jobs.field(job.id, "tgrunner_deaths") == b"1"


async def test_three_deaths_fail_the_job_and_the_user_is_told_once(jobs: RQJobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.echo.enqueue("never", reply_to=asked)
    for death in range(MAX_DEATHS):
        assert await jobs.source.claim(f"dead{death}", 0.1) is not None
        await jobs.source.wait(5.0)
        await jobs.source.renew("none", "nobody", 1.0)  # reaps the lease that ran out
    await jobs.drain()
    await jobs.drain()  # a second sweep tells nobody again
    [reply] = jobs.sent("sendMessage", asked["message_id"])
    assert reply["text"] == job_tasks.echo.failure_message
    with pytest.raises(JobFailed, match=DEATHS_ERROR):
        await job.result(timeout=1)


async def test_a_clean_stop_gives_the_job_back_at_once(jobs: RQJobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.held.enqueue("late", reply_to=asked)
    worker = jobs.worker(burst=False, grace=0.0)
    serving = asyncio.create_task(worker.serve())
    await asyncio.to_thread(job_tasks.started.wait, 10)
    worker.stop()
    assert await asyncio.wait_for(serving, 10) == 0
    info = await jobs.queue.info(job.id)
    assert info is not None and info.state == "queued" and worker.stats.released == 1
    assert jobs.field(job.id, "tgrunner_deaths") == b"0"
    assert jobs.sent("sendMessage", asked["message_id"]) == []
    assert job_tasks.async_gate is not None
    job_tasks.async_gate.set()
    await jobs.drain()
    assert [p["text"] for p in jobs.sent("sendMessage", asked["message_id"])] == ["late"]


async def test_several_workers_reply_to_each_job_once(jobs: RQJobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = [ann.send(f"q{i}") for i in range(120)]
    for i, message in enumerate(asked):
        await job_tasks.echo.enqueue(f"a{i}", reply_to=message)
    sources = [RQSource(jobs.url) for _ in range(3)]
    try:
        workers = [jobs.worker(source, concurrency=4) for source in sources]
        async with asyncio.timeout(30):
            codes = await asyncio.gather(*(w.serve() for w in workers))
    finally:
        for source in sources:
            await source.close()
    assert codes == [0, 0, 0]
    replies = Counter(
        p["reply_parameters"]["message_id"] for p in jobs.sent("sendMessage") if p["text"][0] == "a"
    )
    assert set(replies) == {m["message_id"] for m in asked}
    assert set(replies.values()) == {1}
    assert sum(w.stats.finished for w in workers) == 120
    assert (await jobs.queue.counts())["finished"] == 120
    [newest] = await jobs.queue.listing("finished", 1)
    assert str(pickle.loads(newest.result or b"")).startswith("a")
