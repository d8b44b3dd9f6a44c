"""FloodControl with shared buckets (the SharedBuckets protocol; the real ones are a file for
the worker processes of a machine and Redis for machines): two controls sharing them pace
broadcasts together, a 429 one of them sees pauses the chat for the other (``chats``), and
when the shared buckets fail, calls go on with each process's own."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from flood_support import OK, Answer, answers, too_many

from tgrunner.errors import TgrunnerError
from tgrunner.flood.buckets import BucketTable, Rate
from tgrunner.flood.limiter import FloodControl
from tgrunner.flood.options import FloodOptions
from tgrunner.protocols import SharedBuckets


class MemoryBuckets:
    """The protocol over one BucketTable: what processes sharing a file or Redis see."""

    def __init__(self) -> None:
        self.table = BucketTable()
        self.keys: list[str] = []
        self.broken = False
        self.closed = False

    async def reserve(self, key: str, rate: Rate) -> float:
        if self.broken:
            raise TgrunnerError("the flood store cannot be reached")
        self.keys.append(key)
        now = time.monotonic()
        return self.table.reserve(key, rate, now) - now

    async def pause(self, key: str, seconds: float) -> None:
        if self.broken:
            raise TgrunnerError("the flood store cannot be reached")
        self.table.pause(key, time.monotonic() + seconds)

    async def close(self) -> None:
        self.closed = True


async def sent() -> Answer:
    return OK


def test_the_memory_buckets_are_shared_buckets() -> None:
    assert isinstance(MemoryBuckets(), SharedBuckets)


@pytest.mark.timeout(10)
async def test_two_processes_pace_their_broadcasts_together() -> None:
    shared = MemoryBuckets()
    options = FloodOptions(bulk=Rate(20, 20), margin=0)
    a, b = FloodControl(options, shared=shared), FloodControl(options, shared=shared)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.gather(
        *(c.call("sendMessage", 100 + n, sent, bulk=True) for n in range(20) for c in (a, b))
    )
    took = loop.time() - began
    assert 0.9 <= took < 2, took  # 20 at once, then 20 more at 20/s: for both together
    assert set(shared.keys) == {"bulk"}  # a chat's bucket stays in its process


@pytest.mark.timeout(10)
async def test_with_chats_shared_a_429_pauses_the_chat_in_the_other_process() -> None:
    shared = MemoryBuckets()
    a = FloodControl(FloodOptions(), shared=shared, shared_chats=True)
    b = FloodControl(FloodOptions(), shared=shared, shared_chats=True)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await a.call("sendMessage", 42, answers(too_many(0.3)))
    await b.call("sendMessage", 42, sent)
    assert loop.time() - began >= 0.3
    assert "chat:42" in shared.keys
    began = loop.time()
    await b.call("sendMessage", 43, sent)  # another chat: not held
    assert loop.time() - began < 0.1


@pytest.mark.timeout(10)
async def test_when_the_shared_buckets_fail_calls_go_on(caplog: pytest.LogCaptureFixture) -> None:
    shared = MemoryBuckets()
    control = FloodControl(FloodOptions(), shared=shared, shared_chats=True)
    shared.broken = True
    with caplog.at_level(logging.WARNING, "tgrunner.flood.limiter"):
        assert (await control.call("sendMessage", 1, sent, bulk=True)).status == 200
        assert (await control.call("sendMessage", 2, sent)).status == 200
    warnings = [r for r in caplog.records if "own buckets" in r.getMessage()]
    assert len(warnings) == 1  # once a minute, not once a call
    await control.close()
    await control.close()
    assert shared.closed
    assert (await control.call("sendMessage", 3, sent, bulk=True)).status == 200
