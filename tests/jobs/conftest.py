"""Fixtures of the job tests: the job worker's (see :mod:`job_env`) and the offload pool's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import job_tasks
import pytest
from job_env import Jobs, LogWatch
from offload_support import alive

from tgrunner.client.bot import Bot
from tgrunner.jobs import configure_offload, offload_pids, shutdown_offload
from tgrunner.jobs.backends.sqlite import SQLiteQueue, SQLiteSource
from tgrunner.jobs.queue import use_queue
from tgrunner.testing import FakeTelegram

POOL = 2
"""Processes in the offload tests' pool."""


@pytest.fixture
def offload_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No pool before the test, one of :data:`POOL` processes once it offloads, and none
    after it: the pool is shut down and each of its processes is gone."""
    monkeypatch.delenv("TGRUNNER_OFFLOAD_PROCESSES", raising=False)
    asyncio.run(shutdown_offload())
    configure_offload(POOL)
    seen: set[int] = set()
    yield
    seen.update(offload_pids())
    asyncio.run(shutdown_offload())
    configure_offload(None)
    assert offload_pids() == []
    assert not [pid for pid in seen if alive(pid)], "a pool process outlived shutdown_offload()"


@pytest.fixture
async def jobs(tg: FakeTelegram, tmp_path: Path) -> AsyncIterator[Jobs]:
    job_tasks.reset()
    path = tmp_path / "jobs.sqlite"
    url = f"sqlite:///{path}"
    queue = SQLiteQueue(url, path)
    source = SQLiteSource(url, path)
    bot = Bot(tg.token, api_url=tg.api_url)
    use_queue(queue)
    try:
        yield Jobs(tg, path, queue, source, bot)
    finally:
        use_queue(None)
        job_tasks.gate.set()  # a sync job's thread still waiting: let it end
        await bot.close()
        await source.close()
        await queue.close()


@pytest.fixture
def watch_log() -> Iterator[Any]:
    """``watch_log(pattern)``: a :class:`LogWatch` on the tgrunner logger for the test."""
    logger = logging.getLogger("tgrunner")
    made: list[LogWatch] = []
    level = logger.level
    logger.setLevel(logging.DEBUG)

    def make(pattern: str) -> LogWatch:
        handler = LogWatch(pattern)
        logger.addHandler(handler)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        logger.removeHandler(handler)
    logger.setLevel(level)
