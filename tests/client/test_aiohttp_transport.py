"""The ``aiohttp`` transport against real servers on loopback: responses, how far a failed
exchange got (``sent``, ``answered``), timeouts, the body cap, and its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from loopback import describe, free_port, raw_serving, read_request, serving

from tgrunner._http.server import Request, Response
from tgrunner.client.transports.aiohttp import AiohttpTransport
from tgrunner.client.transports.errors import TransportError, TransportTimeout
from tgrunner.client.transports.fast import HTTPClient
from tgrunner.protocols import Transport


@contextlib.asynccontextmanager
async def transport_for(url: str, **options: Any) -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(url, **options)
    try:
        yield transport
    finally:
        await transport.close()


def test_it_is_a_transport() -> None:
    assert isinstance(AiohttpTransport("http://example.org"), Transport)


async def test_requests_and_repeated_headers() -> None:
    def handler(request: Request) -> Response:
        return Response(200, request.body, headers=(("X-A", "1"), ("X-A", "1")))

    async with serving(handler) as server, transport_for(server.url + "/api") as transport:
        response = await transport.request(
            "POST", "/echo", b'{"a":1}', content_type="application/json"
        )
        assert (response.status, response.body) == (200, b'{"a":1}')
        assert response.headers["x-a"] == "1, 1"
        response = await transport.request("GET", "x?b=c")
        assert response.status == 200


async def test_base_url_path_is_kept() -> None:
    async with serving(describe) as server, transport_for(server.url + "/api/") as transport:
        assert (await transport.request("GET", "/x")).body.startswith(b"GET /api/x ")


async def test_refused_is_not_sent() -> None:
    async with transport_for(f"http://127.0.0.1:{free_port()}") as transport:
        with pytest.raises(TransportError, match="cannot connect") as caught:
            await transport.request("POST", "/")
        assert (caught.value.sent, caught.value.answered) == (False, False)


@pytest.mark.parametrize(
    ("answer", "answered"),
    [
        (b"", False),
        (b"HTTP/1.1 200 OK\r\nCon", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", True),
    ],
)
async def test_a_broken_exchange_says_how_far_it_got(answer: bytes, answered: bool) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with raw_serving(handler) as url, transport_for(url) as transport:
        with pytest.raises(TransportError) as caught:
            await transport.request("POST", "/", b"x")
        assert (caught.value.sent, caught.value.answered) == (True, answered)


async def test_timeout() -> None:
    never: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    async with serving(lambda r: never) as server, transport_for(server.url) as transport:
        with pytest.raises(TransportTimeout, match="no response"):
            await transport.request("POST", "/", timeout=0.05)


async def test_an_oversized_body_is_refused() -> None:
    async with (
        serving(lambda r: Response(200, b"x" * 5000)) as server,
        transport_for(server.url, max_body_size=1000) as transport,
    ):
        with pytest.raises(TransportError, match="larger than 1000 bytes") as caught:
            await transport.request("GET", "/")
        assert caught.value.answered


async def test_pool_size_bounds_connections() -> None:
    gate = asyncio.Event()
    full = asyncio.Event()
    active = most = 0

    async def handler(request: Request) -> Response:
        nonlocal active, most
        active += 1
        most = max(most, active)
        if active == 2:
            full.set()
        await gate.wait()
        active -= 1
        return Response()

    async with serving(handler) as server, transport_for(server.url, pool_size=2) as transport:
        tasks = [asyncio.create_task(transport.request("GET", "/")) for _ in range(6)]
        await full.wait()
        gate.set()
        await asyncio.gather(*tasks)
        assert most == 2


async def test_close_twice_and_reopen() -> None:
    async with serving(describe) as server:
        transport = AiohttpTransport(server.url)
        assert (await transport.request("GET", "/")).status == 200
        await transport.close()
        await transport.close()
        assert (await transport.request("GET", "/")).status == 200
        await transport.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="base URL"):
        AiohttpTransport("ftp://example.org")
    with pytest.raises(ValueError, match="pool_size"):
        AiohttpTransport("http://example.org", pool_size=0)
    with pytest.raises(ValueError, match="SOCKS"):
        AiohttpTransport("http://example.org", proxy="socks5://127.0.0.1:1")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_url": "ftp://x"}, "must be http"),
        ({"base_url": "http://x/?q=1"}, "may not have a query"),
        ({"pool_size": 0}, "pool_size"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"max_body_size": 0}, "max_body_size"),
    ],
)
def test_both_transports_refuse_the_same_bad_options(
    options: dict[str, object], message: str
) -> None:
    for transport in (AiohttpTransport, HTTPClient):
        args: dict[str, object] = {"base_url": "http://127.0.0.1:1", **options}
        with pytest.raises(ValueError, match=message):
            transport(**args)  # type: ignore[arg-type]
