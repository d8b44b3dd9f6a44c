"""The RQ backend against the real Redis: the bot's side (RQQueue) and the worker's (RQSource),
and that RQ's own classes read what they write."""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import (
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq_support import fresh_queue, queue_name, request, sync_redis

from tgrunner.jobs import DEATHS_ERROR, MAX_DEATHS
from tgrunner.jobs.backends.rq import RQQueue
from tgrunner.jobs.backends.rq_source import FOREIGN_ERROR, RQSource

pytestmark = [pytest.mark.services, pytest.mark.timeout(30)]

REPLY = {"chat_id": 5, "message_id": 7}


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_queue()


@pytest.fixture
async def queue(url: str) -> AsyncIterator[RQQueue]:
    q = RQQueue(url, None)
    yield q
    await q.close()


@pytest.fixture
async def source(url: str) -> AsyncIterator[RQSource]:
    s = RQSource(url, None)
    yield s
    await s.close()


async def test_an_enqueued_job_is_an_rq_job(queue: RQQueue, url: str) -> None:
    job_id = await queue.enqueue(request("a cat", function="bot:render", retries=2, timeout=3.5))
    job = RQJob.fetch(job_id, connection=sync_redis())
    assert job.func_name == "tgrunner.jobs.backends.rq_entry.perform"
    assert job.args[0] == "bot:render"
    assert pickle.loads(job.args[1]) == (("a cat",), {})
    assert job.description == "bot.render('a cat')"
    assert job.get_status() == JobStatus.QUEUED
    assert job.origin == queue_name(url)
    assert job.timeout == 4 + 30 and job.retries_left == 2  # RQ's: a backstop
    info = await queue.info(job_id)
    assert info is not None and info.state == "queued" and info.function == "bot:render"
    assert abs(info.enqueued_at - time.time()) < 5
    assert await queue.counts() == {
        "queued": 1,
        "scheduled": 0,
        "started": 0,
        "finished": 0,
        "failed": 0,
        "canceled": 0,
    }
    assert await queue.info("no-such-job") is None


async def test_claim_then_finish(queue: RQQueue, source: RQSource) -> None:
    job_id = await queue.enqueue(request("x", reply_to=REPLY, timeout=2.0))
    claim = await source.claim("w1", 5.0)
    assert claim is not None and claim.id == job_id
    assert (claim.function, claim.attempts, claim.deaths, claim.timeout) == ("mod:fn", 0, 0, 2.0)
    assert claim.reply_to == REPLY and pickle.loads(claim.payload) == (("x",), {})
    assert await source.claim("w2", 5.0) is None
    assert [j.id for j in await queue.listing("started")] == [job_id]
    job = RQJob.fetch(job_id, connection=sync_redis())
    assert job.get_status() == JobStatus.STARTED
    [execution] = job.get_executions()  # RQ's record of the run, as its workers leave it
    assert execution.worker_name == "w1"
    wip = sync_redis().zrange(f"rq:wip:{queue.options.queue}", 0, -1)
    assert wip == [execution.composite_key.encode()]
    assert await source.finish(job_id, "w1", pickle.dumps("done"), reply_sent=True)
    info = await queue.info(job_id)
    assert info is not None and info.state == "finished" and info.ended_at is not None
    assert info.result is not None and pickle.loads(info.result) == "done"
    job = RQJob.fetch(job_id, connection=sync_redis())
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == "done"
    assert job.get_executions() == []
    assert job_id in FinishedJobRegistry(queue.options.queue, connection=sync_redis())
    assert 0 < sync_redis().ttl(job.key) <= 500  # RQ's result TTL
    assert (await queue.counts())["finished"] == 1
    assert await source.unreplied() == []
    assert not await source.finish(job_id, "w1", None, reply_sent=True)


async def test_wait_returns_when_a_job_is_queued(queue: RQQueue, source: RQSource) -> None:
    assert await source.claim("w1", 5.0) is None
    start = time.monotonic()
    waiting = asyncio.create_task(source.wait(10.0))
    await asyncio.sleep(0)
    await queue.enqueue(request())
    await asyncio.wait_for(waiting, 5.0)
    assert time.monotonic() - start < 2.0
    assert await source.claim("w1", 5.0) is not None


async def test_retries_back_off_in_rqs_scheduled_registry(queue: RQQueue, source: RQSource) -> None:
    job_id = await queue.enqueue(request(retries=1, reply_to=REPLY))
    assert await source.claim("w1", 5.0) is not None
    assert await source.fail(job_id, "w1", "ValueError: bad", retry_delay=0.3, reply_sent=False)
    info = await queue.info(job_id)
    assert info is not None and (info.state, info.attempts, info.error) == (
        "scheduled",
        1,
        "ValueError: bad",
    )
    assert job_id in ScheduledJobRegistry(queue.options.queue, connection=sync_redis())
    assert await source.claim("w1", 5.0) is None
    start = time.monotonic()
    await source.wait(5.0)  # until the retry is due, not the whole timeout
    claim = await source.claim("w1", 5.0)
    assert claim is not None and claim.attempts == 1 and claim.last_try
    assert 0.2 < time.monotonic() - start < 2.0
    assert await source.fail(job_id, "w1", "ValueError: again", retry_delay=0.3, reply_sent=False)
    info = await queue.info(job_id)
    assert info is not None and (info.state, info.attempts, info.error) == (
        "failed",
        2,
        "ValueError: again",
    )
    job = RQJob.fetch(job_id, connection=sync_redis())
    assert job.get_status() == JobStatus.FAILED
    assert job.latest_result() is not None and "again" in (job.latest_result().exc_string or "")
    assert job_id in FailedJobRegistry(queue.options.queue, connection=sync_redis())
    assert [c.id for c in await source.unreplied()] == [job_id]
    assert await source.mark_reply_sent(job_id)
    assert not await source.mark_reply_sent(job_id)
    assert await source.unreplied() == []


async def test_no_retry_delay_fails_at_once_and_zero_queues_at_once(
    queue: RQQueue, source: RQSource
) -> None:
    first = await queue.enqueue(request(retries=3))
    second = await queue.enqueue(request(retries=3))
    assert (await source.claim("w", 5.0)).id == first  # type: ignore[union-attr]
    assert await source.fail(first, "w", "Boom", retry_delay=None, reply_sent=True)
    assert (await queue.info(first)).state == "failed"  # type: ignore[union-attr]
    assert await source.unreplied() == []  # no reply_to: nothing owed
    assert (await source.claim("w", 5.0)).id == second  # type: ignore[union-attr]
    assert await source.fail(second, "w", "Boom", retry_delay=0, reply_sent=False)
    assert (await queue.info(second)).state == "queued"  # type: ignore[union-attr]


async def test_a_dead_workers_job_comes_back_and_fails_at_the_third_death(
    queue: RQQueue, source: RQSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "tgrunner.jobs.rq")
    job_id = await queue.enqueue(request(reply_to=REPLY))
    for death in range(1, MAX_DEATHS):
        owner = f"w{death}"
        claim = await source.claim(owner, 0.2)
        assert claim is not None and claim.deaths == death - 1
        assert await source.claim("other", 0.2) is None
        await source.wait(5.0)  # the lease's end wakes it
        assert not await source.renew(job_id, "intruder", 5.0)
    claim = await source.claim("last", 0.2)
    assert claim is not None and claim.deaths == MAX_DEATHS - 1
    assert await source.claim("other", 0.2) is None
    await source.wait(5.0)
    assert await source.claim("other", 0.2) is None  # reaps: the third death fails it
    assert not await source.finish(job_id, "last", None, reply_sent=True)
    info = await queue.info(job_id)
    assert info is not None and info.state == "failed" and info.error == DEATHS_ERROR
    assert [c.id for c in await source.unreplied()] == [job_id]
    deaths = [r for r in caplog.records if "lease expired" in r.getMessage()]
    assert len(deaths) == MAX_DEATHS
    assert deaths[-1].levelno == logging.ERROR


async def test_a_renewed_lease_is_not_taken(queue: RQQueue, source: RQSource) -> None:
    job_id = await queue.enqueue(request())
    assert await source.claim("w1", 0.3) is not None
    for _ in range(4):
        await asyncio.sleep(0.15)
        assert await source.renew(job_id, "w1", 0.3)
        assert await source.claim("w2", 0.3) is None
    assert await source.finish(job_id, "w1", None, reply_sent=True)


async def test_release_puts_the_job_back_at_the_head(queue: RQQueue, source: RQSource) -> None:
    first = await queue.enqueue(request())
    await queue.enqueue(request())
    assert (await source.claim("w1", 5.0)).id == first  # type: ignore[union-attr]
    assert not await source.release(first, "w2")
    assert await source.release(first, "w1")
    claim = await source.claim("w2", 5.0)
    assert claim is not None and claim.id == first and claim.deaths == 0 and claim.attempts == 0


async def test_only_the_owner_changes_a_started_job(queue: RQQueue, source: RQSource) -> None:
    job_id = await queue.enqueue(request(retries=1, reply_to=REPLY))
    assert await source.claim("w1", 5.0) is not None
    assert not await source.finish(job_id, "w2", None, reply_sent=True)
    assert not await source.fail(job_id, "w2", "x", retry_delay=1.0, reply_sent=False)
    assert not await source.release(job_id, "w2")
    assert not await source.set_status_message(job_id, "w2", 99)
    assert await source.set_status_message(job_id, "w1", 99)
    assert await source.release(job_id, "w1")
    claim = await source.claim("w3", 5.0)
    assert claim is not None and claim.reply_to == {**REPLY, "status_message_id": 99}


async def test_cancel_and_retry(queue: RQQueue, source: RQSource) -> None:
    canceled = await queue.enqueue(request())
    started = await queue.enqueue(request())
    assert await queue.cancel(canceled)
    assert not await queue.cancel(canceled)
    assert (await source.claim("w", 5.0)).id == started  # type: ignore[union-attr]
    assert not await queue.cancel(started)
    assert not await queue.retry(started)
    assert await source.fail(started, "w", "Boom", retry_delay=None, reply_sent=False)
    assert [j.id for j in await queue.listing("canceled")] == [canceled]
    assert [j.id for j in await queue.listing("failed")] == [started]
    assert RQJob.fetch(canceled, connection=sync_redis()).get_status() == JobStatus.CANCELED
    assert await queue.retry(started)
    assert await queue.retry(canceled)
    info = await queue.info(started)
    assert info is not None and (info.state, info.attempts, info.error) == ("queued", 0, None)
    assert [j.id for j in await queue.listing("queued")] == [canceled, started]
    assert (await queue.counts())["failed"] == 0


async def test_a_job_tgrunner_did_not_queue_is_failed_saying_so(url: str, source: RQSource) -> None:
    from rq import Queue

    plain = Queue(queue_name(url), connection=sync_redis()).enqueue("builtins.print", "hi")
    assert await source.claim("w", 5.0) is None
    job = RQJob.fetch(plain.id, connection=sync_redis())
    assert job.get_status() == JobStatus.FAILED
    assert FOREIGN_ERROR in (job.latest_result().exc_string or "")  # type: ignore[union-attr]


async def test_an_enqueue_retried_after_a_lost_answer_queues_once(
    queue: RQQueue, source: RQSource
) -> None:
    from tgrunner.jobs.backends._rq_common import job_fields

    fields = job_fields("fixed-id", request(), queue.options)
    for written in (1, 0):
        assert await queue._run(queue._enqueue, "test", "fixed-id", *fields) == written
    assert await source.claim("w", 5.0) is not None
    assert await source.claim("w", 5.0) is None


async def test_a_write_retried_with_its_token_answers_as_the_first_time(
    queue: RQQueue, source: RQSource
) -> None:
    job_id = await queue.enqueue(request(retries=1))
    assert await source.claim("w", 5.0) is not None
    args = ("w", job_id, "token-1", "Boom", b"", "", "5", 0)
    assert await source._write(source._fail, "test", 1.0, "w", *args) == 2
    assert await source._write(source._fail, "test", 1.0, "w", *args) == 2
    assert (await queue.info(job_id)).attempts == 1  # type: ignore[union-attr]


async def test_concurrent_claims_take_each_job_once(url: str, queue: RQQueue) -> None:
    ids = {await queue.enqueue(request(i)) for i in range(200)}
    sources = [RQSource(url), RQSource(url)]
    taken: list[str] = []

    async def work(source: RQSource, owner: str) -> None:
        while (claim := await source.claim(owner, 5.0)) is not None:
            taken.append(claim.id)
            assert await source.finish(claim.id, owner, None, reply_sent=True)

    try:
        await asyncio.gather(*(work(sources[i % 2], f"w{i}") for i in range(8)))
    finally:
        for s in sources:
            await s.close()
    assert sorted(taken) == sorted(ids)
    assert (await queue.counts())["finished"] == 200


async def test_result_ttl_from_the_url(url: str) -> None:
    queue, source = RQQueue(url + "&result_ttl=3&failure_ttl=7"), RQSource(url)
    try:
        done = await queue.enqueue(request())
        failed = await queue.enqueue(request())
        assert await source.claim("w", 5.0) is not None
        assert await source.finish(done, "w", None, reply_sent=True)
        assert await source.claim("w", 5.0) is not None
        assert await source.fail(failed, "w", "x", retry_delay=None, reply_sent=True)
        r = sync_redis()
        assert 0 < r.ttl(f"rq:job:{done}") <= 3
        assert 3 < r.ttl(f"rq:job:{failed}") <= 7
        assert await source.purge() == 0
    finally:
        await queue.close()
        await source.close()


async def test_a_claim_retried_with_its_token_gets_the_same_job(
    queue: RQQueue, source: RQSource
) -> None:
    first = await queue.enqueue(request())
    await queue.enqueue(request())
    source._pending["w"] = "token-1"  # as after a claim whose answer was lost
    assert (await source.claim("w", 5.0)).id == first  # type: ignore[union-attr]
    source._pending["w"] = "token-1"
    assert (await source.claim("w", 5.0)).id == first  # type: ignore[union-attr]
    assert (await source.claim("w", 5.0)).id != first  # type: ignore[union-attr]


async def test_rqs_own_cancel_of_a_started_job_ends_its_lease(
    queue: RQQueue, source: RQSource
) -> None:
    job_id = await queue.enqueue(request())
    assert await source.claim("w", 5.0) is not None
    RQJob.fetch(job_id, connection=sync_redis()).cancel()  # rq-dashboard's cancel
    assert StartedJobRegistry(queue.options.queue, connection=sync_redis()).get_job_ids() == []
    assert not await source.renew(job_id, "w", 5.0)
    assert not await source.finish(job_id, "w", None, reply_sent=True)
    assert (await queue.info(job_id)).state == "canceled"  # type: ignore[union-attr]


async def test_concurrent_enqueues_share_a_pipeline_and_each_queues_once(
    queue: RQQueue, source: RQSource
) -> None:
    ids = await asyncio.gather(*(queue.enqueue(request(i)) for i in range(300)))
    assert len(set(ids)) == 300
    assert (await queue.counts())["queued"] == 300
    claims = []
    while (claim := await source.claim("w", 5.0)) is not None:
        claims.append(claim)
    assert [c.id for c in claims] == ids  # in the order they were asked for
    assert [pickle.loads(c.payload)[0][0] for c in claims] == list(range(300))
