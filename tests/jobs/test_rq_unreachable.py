"""The RQ backend's URL options, and what it does while Redis cannot be reached: a closed
port on loopback, retries with backoff for a bounded time, one log line, a clear error."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest
from rq_support import closed_port, fresh_queue, request, sync_redis

from tgrunner.errors import ConfigError, QueueUnavailable
from tgrunner.jobs.backends._rq_common import RQOptions
from tgrunner.jobs.backends.rq import RQQueue
from tgrunner.jobs.backends.rq_source import RQSource
from tgrunner.jobs.queue import open_queue

pytestmark = pytest.mark.timeout(30)


def test_options_come_out_of_the_url_before_redis_py_sees_it() -> None:
    options = RQOptions.from_url(
        "redis://:s3cret@127.0.0.1:6380/3?queue=renders&retry_for=2.5&socket_timeout=4"
        "&result_ttl=60&failure_ttl=-1"
    )
    assert options.queue == "renders" and options.retry_for == 2.5
    assert (options.result_ttl, options.failure_ttl) == (60, -1)
    assert options.redis_url == "redis://:s3cret@127.0.0.1:6380/3?socket_timeout=4"
    assert options.safe_url == "redis://:***@127.0.0.1:6380/3?socket_timeout=4"
    assert RQOptions.from_url("redis://localhost").queue == "tgrunner"
    assert "***" in RQOptions.from_url("unix:///tmp/r.sock?db=2&password=pw").safe_url


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?qeue=x", r"unknown option \?qeue="),
        ("?queue=a/b", "queue name"),
        ("?retry_for=-1", "retry_for"),
        ("?result_ttl=0", "result_ttl"),
        ("?failure_ttl=soon", "failure_ttl"),
    ],
)
def test_bad_options_are_refused(query: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        RQOptions.from_url(f"redis://127.0.0.1:6379/0{query}")


def test_open_queue_picks_the_rq_backend_by_scheme() -> None:
    queue = open_queue("redis://:pw@127.0.0.1:6379/12?queue=x", data_dir=".", bot_id=1)
    assert isinstance(queue, RQQueue) and queue.url == "redis://:***@127.0.0.1:6379/12"
    asyncio.run(queue.close())


async def test_enqueue_retries_then_raises_queue_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "tgrunner.jobs.rq")
    url = f"redis://:s3cret@127.0.0.1:{closed_port()}/0?retry_for=0.6"
    queue = RQQueue(url)
    start = time.monotonic()
    try:
        with pytest.raises(QueueUnavailable) as raised:
            await queue.enqueue(request())
    finally:
        await queue.close()
    took = time.monotonic() - start
    message = str(raised.value)
    assert 0.5 < took < 3.0
    assert "s3cret" not in message and "redis://:***@127.0.0.1:" in message
    assert "retried with backoff for 0.6 s" in message
    lines = [r for r in caplog.records if r.name == "tgrunner.jobs.rq"]
    assert len(lines) == 1 and "unreachable" in lines[0].getMessage()
    assert lines[0].exc_info is None


async def test_check_answers_at_once() -> None:
    queue = RQQueue(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        start = time.monotonic()
        with pytest.raises(QueueUnavailable, match="does not answer"):
            await queue.check()
        assert time.monotonic() - start < 2.0
    finally:
        await queue.close()


async def test_a_worker_backs_off_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tgrunner.jobs.rq")
    source = RQSource(f"redis://127.0.0.1:{closed_port()}/0?retry_for=0.3")
    try:
        waits = []
        for _ in range(5):
            assert await source.claim("w", 5.0) is None
            start = time.monotonic()
            await source.wait(10.0)
            waits.append(time.monotonic() - start)
        with pytest.raises(QueueUnavailable):
            await source.finish("some-job", "w", None, reply_sent=True)
    finally:
        await source.close()
    assert waits == sorted(waits) and 0.5 < waits[-1] < 3.0  # backoff grows, capped
    lines = [r.getMessage() for r in caplog.records if r.name == "tgrunner.jobs.rq"]
    assert len(lines) == 1 and "unreachable" in lines[0]


@pytest.fixture
def url() -> Iterator[str]:
    yield from fresh_queue()


@pytest.mark.services
async def test_a_worker_says_once_when_redis_answers_again(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "tgrunner.jobs.rq")
    source = RQSource(url)
    try:
        source._outage.failed(ConnectionError("as if it had been down"))
        assert await source.claim("w", 5.0) is None
        assert await source.claim("w", 5.0) is None
    finally:
        await source.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "tgrunner.jobs.rq"]
    assert len(lines) == 2 and "answers again" in lines[1]
    assert sync_redis().ping()


def test_every_rq_status_is_one_of_ours() -> None:
    from rq.job import JobStatus

    from tgrunner.jobs import STATES
    from tgrunner.jobs.backends._rq_common import STATE_OF

    assert set(STATE_OF) == {status.value for status in JobStatus}
    assert set(STATE_OF.values()) == set(STATES)
    assert (STATE_OF["deferred"], STATE_OF["stopped"]) == ("scheduled", "canceled")


def test_both_sides_follow_their_protocols() -> None:
    from tgrunner.jobs.queue import JobQueue
    from tgrunner.jobs.source import JobSource

    queue, source = RQQueue("redis://127.0.0.1:6379/12"), RQSource("redis://127.0.0.1:6379/12")
    try:
        assert isinstance(queue, JobQueue) and isinstance(source, JobSource)
    finally:
        asyncio.run(queue.close())
        asyncio.run(source.close())


async def test_concurrent_enqueues_all_raise_when_redis_stays_away() -> None:
    queue = RQQueue(f"redis://127.0.0.1:{closed_port()}/0?retry_for=0.3")
    try:
        results = await asyncio.gather(
            *(queue.enqueue(request(i)) for i in range(20)), return_exceptions=True
        )
    finally:
        await queue.close()
    assert all(isinstance(r, QueueUnavailable) for r in results)
