"""Fixtures of the job tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from offload_support import alive

from tgrunner.jobs import configure_offload, offload_pids, shutdown_offload

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
