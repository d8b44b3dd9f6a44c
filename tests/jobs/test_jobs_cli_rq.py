"""The CLI on the RQ backend, in real processes against the real Redis and FakeTelegram:
``tgrunner run --jobs redis://… --job-workers 1`` replies to each message through RQ,
``tgrunner worker --jobs redis://… --burst`` drains what a bot queued there, and ``tgrunner
jobs --jobs redis://…`` counts them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from rq_support import fresh_queue

from job_runs import BOTS, ask, check_replies, counts, job_replies, processing, tgrunner
from processes import end_started_bots, start_bot
from tgrunner.testing import FakeTelegram

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_queue()


@pytest.fixture(autouse=True)
async def _end_our_processes() -> AsyncIterator[None]:
    yield
    await end_started_bots()


async def test_run_with_job_workers_replies_through_rq(tg: FakeTelegram, url: str) -> None:
    bot = await start_bot(tg, "jobs_aiogram:dp", "--jobs", url, "--job-workers", "1", cwd=BOTS)
    log = await bot.wait_for_line("1 job worker(s) on redis://", timeout=30)
    asked = ask(tg, 4)
    await tg.wait_for(lambda: len(job_replies(tg)) >= 4 and processing(tg) >= 4, timeout=45)
    await bot.stop()
    check_replies(tg, asked)
    assert (await counts(tg, "--jobs", url))["finished"] == 4, log


async def test_a_worker_burst_drains_an_rq_queue_the_bot_filled(tg: FakeTelegram, url: str) -> None:
    bot = await start_bot(tg, "jobs_native:router", "--jobs", url, cwd=BOTS)
    asked = ask(tg, 3)
    await tg.wait_for(lambda: processing(tg) >= 3, timeout=30)
    await bot.stop()
    assert (await counts(tg, "--jobs", url))["queued"] == 3
    code, _, err = await tgrunner("worker", "jobs_native", "--jobs", url, "--burst", tg=tg)
    assert code == 0, err
    check_replies(tg, asked)
    assert (await counts(tg, "--jobs", url))["finished"] == 3
