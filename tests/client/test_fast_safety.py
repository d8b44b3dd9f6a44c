"""HTTPClient's safety rules: a request that may have reached the server is never resent, idle
connections expire, a dead pooled connection is never written into, and responses are capped.

Each test pins a defect of an earlier version: it resent a request after a reused connection
closed (a double send), waited the full timeout on a half-dead pooled connection, and read
responses of any size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from loopback import client_for, raw_serving, read_request, serving, yield_until

from tgrunner._http.server import Request, Response
from tgrunner.client.transports.fast import HTTPClient, TransportError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_a_request_the_server_read_is_never_resent() -> None:
    seen: list[tuple[int, bytes]] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        while request := await read_request(reader):
            seen.append((number, request.split(b" ")[1]))
            if len(seen) == 2:
                writer.close()  # read it, then gone without a word
                return
            writer.write(OK)

    async with raw_serving(handler) as url, client_for(url) as client:
        assert (await client.request("POST", "/first", b"1")).body == b"ok"
        with pytest.raises(TransportError, match="before answering") as caught:
            await client.request("POST", "/second", b"2")
        assert (caught.value.sent, caught.value.answered) == (True, False)
    assert seen == [(1, b"/first"), (1, b"/second")]


async def test_a_connection_broken_mid_response_says_so() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await writer.drain()

    async with raw_serving(handler) as url, client_for(url) as client:
        with pytest.raises(TransportError, match="in the middle of the response") as caught:
            await client.request("GET", "/")
        assert (caught.value.sent, caught.value.answered) == (True, True)


async def test_a_pooled_connection_the_server_closed_is_not_used() -> None:
    peers: list[tuple[str, int] | None] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        if await read_request(reader):
            writer.write(OK)
            await writer.drain()
        # and close, while the client keeps the connection in its pool

    async with raw_serving(handler) as url, client_for(url) as client:
        assert (await client.request("GET", "/")).body == b"ok"
        await yield_until(lambda: client.connections == 0)
        assert (await client.request("GET", "/")).body == b"ok"
    assert len(peers) == 2 and peers[0] != peers[1]


async def test_an_idle_connection_expires_instead_of_hanging() -> None:
    """A pooled connection that went silent (a NAT or a server dropped it without a word)
    would eat the whole timeout; past ``idle_timeout`` a fresh one is used instead."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        answered = 0
        while await read_request(reader):
            if number == 1 and answered:
                await reader.read()  # half-dead: it reads and never answers
                return
            writer.write(OK)
            answered += 1

    async with raw_serving(handler) as url, client_for(url, idle_timeout=0.05) as client:
        assert (await client.request("GET", "/")).body == b"ok"
        # The subject of this test is time passing: the connection must sit idle a while.
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await client.request("GET", "/", timeout=5)).body == b"ok"
        assert loop.time() - started < 1
        assert connections == 2


async def test_the_oldest_idle_connection_is_swept_on_release() -> None:
    async def handler(request: Request) -> Response:
        if request.path == "/hold":
            await gate.wait()
        return Response()

    gate = asyncio.Event()
    async with serving(handler) as server, client_for(server.url, idle_timeout=0.05) as client:
        first = asyncio.create_task(client.request("GET", "/hold"))
        await yield_until(lambda: client.connections == 1)
        await client.request("GET", "/quick")  # a second connection, idle after this
        await asyncio.sleep(0.1)  # it expires
        gate.set()
        await first  # released: the expired one is dropped, this one is kept
        await yield_until(lambda: client.connections == 1)


async def test_an_oversized_body_is_refused_and_the_connection_dropped() -> None:
    big = b"x" * 2000

    def handler(request: Request) -> Response:
        return Response(200, big if request.path == "/big" else b"small")

    async with serving(handler) as server, client_for(server.url, max_body_size=1000) as client:
        assert (await client.request("GET", "/small")).body == b"small"
        with pytest.raises(TransportError, match="larger than 1000 bytes"):
            await client.request("GET", "/big")
        await yield_until(lambda: server.connections == 0)
        assert (await client.request("GET", "/small")).body == b"small"


async def test_an_oversized_chunked_body_is_refused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(20):
            writer.write(b"64\r\n" + b"y" * 100 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await reader.read()

    async with raw_serving(handler) as url, client_for(url, max_body_size=1000) as client:
        with pytest.raises(TransportError, match="larger than 1000 bytes"):
            await client.request("GET", "/")


@pytest.mark.parametrize("drip", [False, True])
async def test_oversized_headers_are_refused(drip: bool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(100):
            writer.write(b"X-%d: %b\r\n" % (i, b"v" * 100))
            if drip:
                await writer.drain()
        writer.write(b"Content-Length: 0\r\n\r\n")
        await reader.read()

    async with raw_serving(handler) as url, client_for(url, max_header_size=4096) as client:
        with pytest.raises(TransportError, match="headers larger than 4096 bytes"):
            await client.request("GET", "/")


async def test_one_endless_header_is_refused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        try:
            for _ in range(100):
                writer.write(b"z" * 1024)
                await writer.drain()
        except ConnectionError:
            return
        await reader.read()

    async with raw_serving(handler) as url, client_for(url, max_header_size=4096) as client:
        with pytest.raises(TransportError, match="headers larger than 4096 bytes"):
            await client.request("GET", "/")


async def test_default_limits_allow_a_large_download() -> None:
    big = b"z" * (8 * 1024 * 1024)
    async with serving(lambda r: Response(200, big)) as server, client_for(server.url) as client:
        assert len((await client.request("GET", "/file")).body) == len(big)


def test_limits_and_idle_timeout_are_checked() -> None:
    with pytest.raises(ValueError, match="max_body_size"):
        HTTPClient("http://example.org", max_body_size=0)
    with pytest.raises(ValueError, match="max_header_size"):
        HTTPClient("http://example.org", max_header_size=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        HTTPClient("http://example.org", idle_timeout=0)


SCENARIOS: list[Callable[[], Awaitable[None]]] = [
    test_a_request_the_server_read_is_never_resent,
    test_a_connection_broken_mid_response_says_so,
    test_a_pooled_connection_the_server_closed_is_not_used,
    test_an_idle_connection_expires_instead_of_hanging,
    test_an_oversized_body_is_refused_and_the_connection_dropped,
    test_an_oversized_chunked_body_is_refused,
    test_one_endless_header_is_refused,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_under_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(scenario())  # type: ignore[arg-type]
