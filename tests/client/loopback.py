"""Helpers of the client tests: servers on loopback for the length of a block, a TLS
certificate authority, and a forward proxy that counts what goes through it.

Nothing here sleeps to synchronise: helpers wait on events, futures and socket reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trustme

# The shared helpers, re-exported for the client tests.
from servers import free_port as free_port
from servers import serving as serving
from tgrunner._http.server import Request, Response
from tgrunner.client.transports.fast import HTTPClient

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_serving(handler: RawHandler) -> AsyncIterator[str]:
    """A bare asyncio server that speaks whatever ``handler`` writes; yields its base URL."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def client_for(url: str, **options: Any) -> AsyncIterator[HTTPClient]:
    client = HTTPClient(url, **options)
    try:
        yield client
    finally:
        await client.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and Content-Length body, or b"" at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def yield_until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds: progress, not time, is what is awaited."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def describe(request: Request) -> Response:
    text = f"{request.method} {request.path} {request.query.decode()} "
    text += f"{request.headers.get('content-type')} {request.headers.get('x-token')} "
    return Response(200, text.encode() + request.body, headers=(("X-Seen", "1"),))


# -- TLS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLS:
    """A throw-away CA and a certificate for 127.0.0.1 and localhost, signed by it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def make_tls() -> TLS:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TLS(server, client)


# -- a forward proxy -------------------------------------------------------------------------


@dataclass
class Proxy:
    """What went through the proxy: absolute-URI requests and CONNECT tunnels, in order."""

    url: str = ""
    requests: list[str] = field(default_factory=list)
    tunnels: list[str] = field(default_factory=list)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


_HOP_BY_HOP = (b"connection:", b"proxy-connection:", b"keep-alive:", b"proxy-authorization:")


async def _forward(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
    """One absolute-URI request, sent on as an origin-form request on a connection of its own;
    the answer is passed back, and the client's connection closed after it."""
    first, *lines = head.split(b"\r\n")
    method, target, version = first.split(b" ")
    hostport, _, path = target.split(b"://", 1)[1].partition(b"/")
    host, _, port = hostport.partition(b":")
    kept = [line for line in lines if line and not line.lower().startswith(_HOP_BY_HOP)]
    up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port or b"80"))
    up_writer.write(b"%b /%b %b\r\n" % (method, path, version))
    up_writer.write(b"".join(line + b"\r\n" for line in kept))
    up_writer.write(b"Connection: close\r\n\r\n" + body)
    await up_writer.drain()
    answer = await up_reader.read()
    up_writer.close()
    writer.write(answer)
    await writer.drain()


@contextlib.asynccontextmanager
async def forward_proxy() -> AsyncIterator[Proxy]:
    """An HTTP forward proxy on loopback: absolute-URI requests (for ``http://`` targets) and
    CONNECT tunnels (for ``https://``)."""
    proxy = Proxy()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await read_request(reader)
            if not head:
                return
            first = head.partition(b"\r\n")[0].decode()
            method, target, _ = first.split(" ")
            if method == "CONNECT":
                proxy.tunnels.append(target)
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            else:
                proxy.requests.append(f"{method} {target}")
                end = head.index(b"\r\n\r\n")
                await _forward(head[:end], head[end + 4 :], writer)
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    proxy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield proxy
    finally:
        server.close()
        await server.wait_closed()
