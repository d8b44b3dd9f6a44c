"""A property of the RQ backend with the job worker, over random job durations, failures and
worker deaths: every job ends in one final state, with exactly one reply (its result, or its
failure message), and its deaths and attempts counted as they happened."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import job_tasks
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq_support import fresh_queue, need_redis, rq_jobs

from tgrunner.jobs import DEATHS_ERROR, MAX_DEATHS
from tgrunner.testing import FakeTelegram

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(300)]

RETRIES = job_tasks.chaos.retries  # 2: a job that fails 3 tries fails for good
# Of the workers that die: past the time to claim and give back every job of a round, under
# load too (at 0.5 s a loaded machine let leases of jobs not yet given back run out, and any
# call counted their deaths).
LEASE = 1.5


@dataclass(frozen=True)
class Spec:
    seconds: float  # how long each run sleeps
    fail_tries: int  # its first tries that raise
    deaths: int  # runs cut by a worker's death before a live worker takes it


specs = st.builds(
    Spec,
    seconds=st.sampled_from([0.0, 0.005, 0.02]),
    fail_tries=st.integers(0, RETRIES + 1),
    deaths=st.integers(0, MAX_DEATHS),
)


async def _scenario(url: str, plan: list[Spec]) -> None:
    async with FakeTelegram() as tg, rq_jobs(tg, url) as jobs:
        user = tg.user("Ann")
        asked = []
        for i, spec in enumerate(plan):
            message = user.send(f"q{i}")
            job = await job_tasks.chaos.enqueue(spec.seconds, spec.fail_tries, f"r{i}",
                                                reply_to=message)  # fmt: skip
            asked.append((message, job))
        deaths = {job.id: spec.deaths for (_, job), spec in zip(asked, plan, strict=True)}
        for round_ in range(1, MAX_DEATHS + 1):
            # A worker takes every queued job, gives back those that live this round, and
            # dies holding the others.
            owner = f"doomed{round_}"
            taken = []
            while (claim := await jobs.source.claim(owner, LEASE)) is not None:
                taken.append(claim.id)
            assert len(set(taken)) == len(taken), "a lease ran out while claiming: raise LEASE"
            dying = [job_id for job_id in taken if deaths[job_id] >= round_]
            for job_id in taken:
                if job_id not in dying:
                    assert await jobs.source.release(job_id, owner)
            if dying:
                await asyncio.sleep(LEASE * 1.2)  # past their leases' end
                await jobs.source.renew("none", "nobody", 1.0)  # any worker's call sees it
                for job_id in dying:
                    assert jobs.field(job_id, "tgrunner_deaths") == str(round_).encode()
        workers = [jobs.worker(concurrency=2) for _ in range(2)]
        async with asyncio.timeout(60):
            assert await asyncio.gather(*(w.serve() for w in workers)) == [0, 0]
        replies = Counter(p["reply_parameters"]["message_id"] for p in jobs.sent("sendMessage"))
        for (message, job), spec, i in zip(asked, plan, range(len(plan)), strict=True):
            info = await jobs.queue.info(job.id)
            assert info is not None
            [reply] = jobs.sent("sendMessage", message["message_id"])
            assert replies[message["message_id"]] == 1
            if spec.deaths >= MAX_DEATHS:
                assert (info.state, info.error, info.attempts) == ("failed", DEATHS_ERROR, 0)
                assert reply["text"] == job_tasks.chaos.failure_message
            elif spec.fail_tries > RETRIES:
                assert (info.state, info.attempts) == ("failed", RETRIES + 1)
                assert reply["text"] == job_tasks.chaos.failure_message
            else:
                assert (info.state, info.attempts) == ("finished", spec.fail_tries)
                assert reply["text"] == f"r{i}"
            assert jobs.field(job.id, "tgrunner_deaths") == str(spec.deaths).encode()
        assert await jobs.source.unreplied() == []


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=st.lists(specs, min_size=1, max_size=6))
def test_every_job_ends_once_with_one_reply(plan: list[Spec]) -> None:
    need_redis()
    queue = fresh_queue()
    url = next(queue)
    try:
        asyncio.run(_scenario(url, plan))
    finally:
        queue.close()
