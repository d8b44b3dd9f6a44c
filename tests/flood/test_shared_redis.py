"""RedisBuckets against real Redis: one hash per bucket with a TTL that ends when it is idle
(flat memory), reservations made together answered in order, and an unreachable, silent or
restarted server: a clear error, at once, then back to work (the script loaded again)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import socket
import time
from collections.abc import AsyncIterator

import pytest
import redis
from shared_support import REDIS_URL, count_keys, redis_prefix, sync_redis

from services import need_service
from tgrunner.errors import FloodStoreUnavailable
from tgrunner.flood import Rate
from tgrunner.flood.backends.redis import RedisBuckets
from tgrunner.protocols import SharedBuckets

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    need_service("redis")
    with redis_prefix() as value:
        yield value


@pytest.fixture
async def buckets(prefix: str) -> AsyncIterator[RedisBuckets]:
    shared = RedisBuckets(REDIS_URL, prefix=prefix)
    try:
        yield shared
    finally:
        await shared.close()


async def until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for a key's TTL to run out: Redis expires it on its own clock, so look again."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_bucket_is_one_hash_that_expires_once_idle(
    prefix: str, buckets: RedisBuckets
) -> None:
    assert isinstance(buckets, SharedBuckets)
    client = sync_redis()
    try:
        assert await buckets.reserve("chat:1", Rate(50.0)) == 0.0
        assert 0 < client.pttl(f"{prefix}chat:1") <= 21  # idle 20 ms on: gone then
        await buckets.pause("chat:2", 0.3)
        assert 250 < client.pttl(f"{prefix}chat:2") <= 301
        fields = client.hgetall(f"{prefix}chat:2")
        assert set(fields) == {b"t", b"p"} and int(fields[b"p"]) > int(fields[b"t"])
        await buckets.pause("chat:2", 0.1)  # an earlier end changes nothing
        assert client.pttl(f"{prefix}chat:2") > 200
        assert await buckets.reserve("chat:2", Rate(50.0)) > 0.2
        await until(lambda: count_keys(prefix) == 0)
        assert await buckets.reserve("chat:1", Rate(50.0)) == 0.0  # gone: a new bucket
    finally:
        client.close()


async def test_many_chats_over_time_leave_nothing_behind(
    prefix: str, buckets: RedisBuckets
) -> None:
    rate = Rate(1.0, burst=3)
    for start in range(0, 3000, 100):
        waits = await asyncio.gather(
            *(buckets.reserve(f"chat:{n}", rate) for n in range(start, start + 100))
        )
        assert waits == [0.0] * 100
    assert 0 < count_keys(prefix) <= 3000
    await until(lambda: count_keys(prefix) == 0)  # each idle one second after its call


async def test_reservations_made_together_are_answered_in_their_order(
    buckets: RedisBuckets,
) -> None:
    rate = Rate(100.0, burst=5)
    waits = await asyncio.gather(*(buckets.reserve("bulk", rate) for _ in range(200)))
    assert waits[:5] == [0.0] * 5
    # One slot each, in the order asked (each wait is from its own run's TIME, a little
    # later than the one before).
    steps = [b - a for a, b in itertools.pairwise(waits[4:])]
    assert steps == pytest.approx([0.01] * (len(waits) - 5), abs=1e-3)


async def test_a_cancelled_caller_leaves_the_others_answered(buckets: RedisBuckets) -> None:
    rate = Rate(10.0)
    calls = [asyncio.ensure_future(buckets.reserve("bulk", rate)) for _ in range(5)]
    calls[1].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    answered = [w for i, w in enumerate(done) if i != 1]
    assert answered == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=1e-3)  # it took no slot


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_an_unreachable_redis_fails_at_once_with_what_to_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "tgrunner.flood")
    url = f"redis://:s3cret@127.0.0.1:{closed_port()}/0?recheck=30"
    buckets = RedisBuckets(url)
    try:
        start = time.monotonic()
        with pytest.raises(FloodStoreUnavailable, match="cannot be reached") as raised:
            await buckets.reserve("bulk", Rate(30.0))
        assert time.monotonic() - start < 1.0
        start = time.monotonic()
        for _ in range(100):  # within recheck: no connection tried, no time lost
            with pytest.raises(FloodStoreUnavailable, match="down for"):
                await buckets.pause("bulk", 1.0)
        assert time.monotonic() - start < 0.05
    finally:
        await buckets.close()
    message = str(raised.value)
    assert "s3cret" not in message and "redis://:***@127.0.0.1:" in message
    assert "check that Redis/Valkey runs there" in message
    lines = [r for r in caplog.records if r.name == "tgrunner.flood"]
    assert len(lines) == 1 and "cannot be reached" in lines[0].getMessage()


async def test_a_silent_server_fails_within_the_socket_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        buckets = RedisBuckets(f"redis://127.0.0.1:{port}/0?socket_timeout=0.3")
        start = time.monotonic()
        try:
            with pytest.raises(FloodStoreUnavailable, match="cannot be reached"):
                await buckets.reserve("bulk", Rate(30.0))
        finally:
            await buckets.close()
        assert 0.25 < time.monotonic() - start < 2.0


async def start_redis(port: int) -> asyncio.subprocess.Process:
    """A private redis-server on ``port`` (no persistence), once it accepts connections."""
    proc = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    async with asyncio.timeout(10):
        async for line in proc.stdout:
            if b"Ready to accept connections" in line:
                break
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_a_restarted_redis_is_used_again_and_its_script_loaded_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (a private server is restarted here)")
    caplog.set_level(logging.WARNING, "tgrunner.flood")
    port = closed_port()
    server = await start_redis(port)
    buckets = RedisBuckets(f"redis://127.0.0.1:{port}/0?recheck=0.2")
    try:
        assert await buckets.reserve("bulk", Rate(1.0)) == 0.0
        await stop(server)
        with pytest.raises(FloodStoreUnavailable, match="cannot be reached"):
            await buckets.reserve("bulk", Rate(1.0))
        down = time.monotonic()
        server = await start_redis(port)  # empty, and without the script
        with pytest.raises(FloodStoreUnavailable, match="down for"):
            await buckets.reserve("bulk", Rate(1.0))
        await asyncio.sleep(max(0.0, down + 0.25 - time.monotonic()))  # recheck's end
        waits = await asyncio.gather(*(buckets.reserve("bulk", Rate(1.0)) for _ in range(3)))
        # One pipeline: NOSCRIPT, the script loaded, the three sent again.
        assert waits == pytest.approx([0.0, 1.0, 2.0], abs=1e-2)
        admin = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
        admin.script_flush()
        admin.close()
        assert await buckets.reserve("bulk", Rate(1.0)) == pytest.approx(3.0, abs=0.05)
    finally:
        await buckets.close()
        await stop(server)
    said = [r.getMessage() for r in caplog.records if r.name == "tgrunner.flood"]
    assert len(said) == 2 and "cannot be reached" in said[0] and "answers again" in said[1]
