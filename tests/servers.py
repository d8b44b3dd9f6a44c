"""Helpers of the HTTP tests: an HTTPServer on loopback for the length of a block, and a
loopback port nothing listens on."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tgrunner._http.server import HTTPServer, Request, Response


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released: connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[Request], Response | Awaitable[Response]], **options: Any
) -> AsyncIterator[HTTPServer]:
    server = HTTPServer(handler, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
