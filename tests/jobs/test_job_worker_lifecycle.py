"""The job worker's lifecycle in this process: concurrency, lost leases, clean and fast stops,
burst, the sweep of jobs failed by their worker's deaths, and replies Telegram refuses or
fails."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import job_tasks
import pytest
from job_env import Jobs

from tgrunner.client.bot import Bot
from tgrunner.errors import Forbidden, JobFailed, NetworkError, ServerError
from tgrunner.jobs import DEATHS_ERROR, DEFAULT_FAILURE_MESSAGE, ReplyPolicy, on_failure
from tgrunner.jobs.delivery import may_resend_reply
from tgrunner.jobs.execute import remove_failure_hook
from tgrunner.jobs.worker import EXIT_CONFIG, JobWorker, default_owner
from tgrunner.testing import Faults

pytestmark = pytest.mark.timeout(30)


async def started(count: int = 1) -> None:
    job_tasks.want = count
    assert await asyncio.to_thread(job_tasks.enough.wait, 10), "the held jobs did not start"


def let_go() -> None:
    assert job_tasks.async_gate is not None
    job_tasks.async_gate.set()


async def test_claims_up_to_its_concurrency(jobs: Jobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    for i in range(5):
        await job_tasks.held.enqueue(str(i), reply_to=asked)
    worker = jobs.worker(concurrency=3)
    serving = asyncio.create_task(worker.serve())
    await started(3)
    assert worker.running == 3
    assert jobs.store.counts()["started"] == 3
    let_go()
    assert await serving == 0
    assert sorted(p["text"] for p in jobs.sent("sendMessage")) == ["0", "1", "2", "3", "4"]


async def test_burst_drains_many_jobs(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = [ann.send(f"q{i}") for i in range(30)]
    for i, message in enumerate(asked):
        await job_tasks.echo.enqueue(f"a{i}", reply_to=message)
    worker = await jobs.drain(concurrency=4)
    assert worker.stats.finished == 30
    for i, message in enumerate(asked):
        assert [p["text"] for p in jobs.sent("sendMessage", message["message_id"])] == [f"a{i}"]
    assert jobs.store.counts()["finished"] == 30


async def test_a_lost_lease_neither_replies_nor_records(jobs: Jobs, watch_log: Any) -> None:
    lost = watch_log("lease lost")
    job = await job_tasks.held.enqueue("late", reply_to=jobs.tg.user("Ann").send("x"))
    worker = jobs.worker(renew_every=0.1)
    serving = asyncio.create_task(worker.serve())
    await started()
    # The worker looks dead to the others (its lease ran out), and another takes the job.
    with sqlite3.connect(jobs.path) as db:
        db.execute("UPDATE jobs SET lease_until = 0 WHERE id = ?", (job.id,))
    assert jobs.store.claim("thief", lease_seconds=60) is not None
    await lost.wait()
    let_go()
    assert await serving == 0
    assert jobs.sent("sendMessage") == []
    record = jobs.store.get(job.id)
    assert record is not None
    assert (record.state, record.lease_owner, record.deaths) == ("started", "thief", 1)
    assert worker.stats.discarded == 1 and worker.stats.finished == 0


async def test_stop_gives_an_unfinished_job_back_at_once(jobs: Jobs) -> None:
    job = await job_tasks.held.enqueue("x", reply_to=jobs.tg.user("Ann").send("x"))
    worker = jobs.worker(burst=False, grace=0.3)
    serving = asyncio.create_task(worker.serve())
    await started()
    began = time.monotonic()
    worker.stop()
    worker.stop()  # safe twice
    assert await serving == 0
    assert time.monotonic() - began < 1.3  # the grace, then at once
    record = jobs.store.get(job.id)
    assert record is not None
    assert (record.state, record.lease_owner, record.deaths, record.attempts) == (
        "queued",
        None,
        0,
        0,
    )
    assert worker.stats.released == 1 and jobs.sent("sendMessage") == []


async def test_a_job_finishing_within_the_grace_replies(jobs: Jobs) -> None:
    first = await job_tasks.held.enqueue("first", reply_to=jobs.tg.user("Ann").send("x"))
    second = await job_tasks.echo.enqueue("second")
    worker = jobs.worker(burst=False, grace=10)
    serving = asyncio.create_task(worker.serve())
    await started()
    worker.stop()
    let_go()
    assert await serving == 0
    assert await first.result(timeout=1) == "first"
    assert [p["text"] for p in jobs.sent("sendMessage")] == ["first"]
    assert await second.status() == "queued"  # no claim after the stop


async def test_a_fast_stop_skips_the_grace(jobs: Jobs) -> None:
    job = await job_tasks.held.enqueue("x")
    worker = jobs.worker(burst=False, grace=60)
    serving = asyncio.create_task(worker.serve())
    await started()
    worker.stop()
    worker.stop(fast=True)
    async with asyncio.timeout(5):
        assert await serving == 0
    assert await job.status() == "queued"


async def test_a_stop_before_serving_is_honoured(jobs: Jobs) -> None:
    job = await job_tasks.echo.enqueue("x")
    worker = jobs.worker(burst=False)
    worker.stop()
    assert await worker.serve() == 0
    assert await job.status() == "queued"
    with pytest.raises(RuntimeError, match="serving already"):
        await worker.serve()


async def test_the_sweep_tells_the_user_of_a_job_its_deaths_failed(jobs: Jobs) -> None:
    seen: list[BaseException] = []
    hook = on_failure(lambda job_id, task, error: seen.append(error))
    try:
        asked = jobs.tg.user("Ann").send("x")
        job = await job_tasks.echo.enqueue("x", reply_to=asked)
        # Three workers took it and died, one after the other (their leases already ended).
        for owner in ("a", "b", "c"):
            assert jobs.store.claim(owner, lease_seconds=-1.0) is not None
        assert jobs.store.claim("d") is None  # the third death fails it
        assert jobs.store.unreplied()[0].id == job.id
        first = await jobs.drain()
        again = await jobs.drain()
    finally:
        remove_failure_hook(hook)
    [told] = jobs.sent("sendMessage", asked["message_id"])
    assert told["text"] == DEFAULT_FAILURE_MESSAGE
    assert (first.stats.swept, again.stats.swept) == (1, 0)
    with pytest.raises(JobFailed, match=DEATHS_ERROR):
        await job.result(timeout=1)
    [error] = seen
    assert isinstance(error, JobFailed) and error.job_id == job.id


async def test_a_reply_to_a_missing_chat_is_refused_once(jobs: Jobs, watch_log: Any) -> None:
    logged = watch_log("refused by Telegram")
    job = await job_tasks.echo.enqueue("x", reply_to={"chat": {"id": 4242}, "message_id": 1})
    await jobs.drain()
    [call] = jobs.tg.calls("sendMessage")
    assert call.status == 400
    await logged.wait()
    record = jobs.store.get(job.id)
    assert record is not None and (record.state, record.reply_sent) == ("finished", True)


async def test_a_429_on_the_reply_waits_and_sends_again(jobs: Jobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.echo.enqueue("after the flood", reply_to=asked)
    jobs.tg.faults = Faults(flood_rate=1.0, retry_after=1, methods=frozenset({"sendMessage"}))
    serving = asyncio.create_task(jobs.worker().serve())
    await jobs.tg.wait_for_call("sendMessage", where=lambda r: r.status == 429)
    jobs.tg.faults = None
    assert await serving == 0
    assert [r.status for r in jobs.tg.calls("sendMessage")] == [429, 200]
    assert await job.result(timeout=1) == "after the flood"


async def test_5xx_on_the_reply_is_retried_a_bounded_number_of_times(jobs: Jobs) -> None:
    job = await job_tasks.echo.enqueue("x", reply_to=jobs.tg.user("Ann").send("x"))
    jobs.tg.faults = Faults(error_rate=1.0, methods=frozenset({"sendMessage"}))
    policy = ReplyPolicy(tries=3, backoff=0.01, max_backoff=0.02)
    await jobs.drain(reply_policy=policy)
    assert [r.status // 100 for r in jobs.tg.calls("sendMessage")] == [5, 5, 5]
    record = jobs.store.get(job.id)
    assert record is not None and (record.state, record.reply_sent) == ("finished", True)


async def test_a_reply_that_may_have_arrived_is_not_sent_again(jobs: Jobs) -> None:
    calls: list[tuple[str, BaseException | None]] = []
    jobs.bot.on_call = lambda method, error, seconds: calls.append((method, error))
    job = await job_tasks.echo.enqueue("x", reply_to=jobs.tg.user("Ann").send("x"))
    jobs.tg.faults = Faults(reset_rate=1.0, methods=frozenset({"sendMessage"}))
    await jobs.drain()
    [(method, error)] = calls
    assert method == "sendMessage" and isinstance(error, NetworkError)
    assert await job.status() == "finished"


async def test_a_refused_token_stops_the_worker_and_gives_the_job_back(jobs: Jobs) -> None:
    job = await job_tasks.echo.enqueue("x", reply_to=jobs.tg.user("Ann").send("x"))
    bot_id = jobs.tg.token.partition(":")[0]
    async with Bot(f"{bot_id}:{'x' * 35}", api_url=jobs.tg.api_url) as wrong:
        worker = JobWorker(jobs.source, wrong, burst=True)
        assert await worker.serve() == EXIT_CONFIG
    assert await job.status() == "queued"


def test_what_counts_as_resendable() -> None:
    assert may_resend_reply(ServerError("sendMessage", 502, "Bad Gateway"))
    assert not may_resend_reply(Forbidden("sendMessage", 403, "bot was blocked by the user"))
    assert not may_resend_reply(NetworkError("sendMessage", "connection reset"))


def test_owners_are_unique_per_worker() -> None:
    a, b = default_owner(), default_owner()
    assert a != b and a.split(":")[1] == b.split(":")[1]


def test_bad_options_are_refused(jobs: Jobs) -> None:
    for options in ({"concurrency": 0}, {"renew_every": 3.0}, {"lease": 1.0, "renew_every": 1.0}):
        with pytest.raises(Exception, match="job worker"):
            JobWorker(jobs.source, jobs.bot, **options)
