"""Shared fixtures. Services are real: a test that needs one skips when it is unreachable,
or fails when ``TGRUNNER_REQUIRE_SERVICES=1`` (as in CI)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import pytest

from tgrunner.testing import FakeTelegram

REQUIRE_SERVICES = os.environ.get("TGRUNNER_REQUIRE_SERVICES") == "1"

SERVICES = {
    "redis": ("127.0.0.1", 6379),
    "postgres": ("127.0.0.1", 5432),
}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_service(name: str) -> None:
    """Skip (or fail, when services are required) unless the named service answers."""
    host, port = SERVICES[name]
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}, and TGRUNNER_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A FakeTelegram serving on a free loopback port for the test's duration."""
    async with FakeTelegram() as fake:
        yield fake
