"""The loopback services the tests use, and the type of the ``api`` fixture.

A test that needs a service calls :func:`need_service`: it skips when the service is
unreachable, or fails when ``TGRUNNER_REQUIRE_SERVICES=1`` (as in CI). Import these from here,
not from ``conftest``: a directory with a conftest of its own would shadow the name.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]

REQUIRE_SERVICES = os.environ.get("TGRUNNER_REQUIRE_SERVICES") == "1"

SERVICES = {
    "redis": ("127.0.0.1", 6379),
    "postgres": ("127.0.0.1", 5432),
    "mysql": ("127.0.0.1", 3306),
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
