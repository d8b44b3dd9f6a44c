"""A helper of the HTTP tests: an HTTPServer on loopback for the length of a block."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tgrunner._http.server import HTTPServer, Request, Response


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
