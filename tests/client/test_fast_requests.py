"""HTTPClient (the ``fast`` transport) against real servers on loopback: requests and
responses, chunked and interim answers, garbage, bad arguments.

The async tests take no fixtures, so ``test_under_uvloop`` can run the same scenarios on
uvloop. Nothing here sleeps to synchronise: tests wait on events, futures and socket reads.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from loopback import client_for, describe, raw_serving, read_request, serving

from tgrunner._http.server import Request, Response
from tgrunner.client.transports.fast import ClientResponse, HTTPClient, TransportError

# -- requests and responses ------------------------------------------------------------------


async def test_get_and_post() -> None:
    async with serving(describe) as server, client_for(server.url) as client:
        response = await client.request("GET", "/a?b=c")
        assert response == ClientResponse(200, response.headers, b"GET /a b=c None None ")
        assert response.headers["x-seen"] == "1"
        assert response.headers["content-type"] == "application/json"
        response = await client.request(
            "POST",
            "/bot1:x/sendMessage",
            b'{"a":1}',
            content_type="application/json",
            headers={"X-Token": "secret"},
        )
        assert response.body == b'POST /bot1:x/sendMessage  application/json secret {"a":1}'


async def test_base_url_path_prefix() -> None:
    async with serving(describe) as server, client_for(server.url + "/api/") as client:
        assert (await client.request("GET", "/x")).body.startswith(b"GET /api/x ")


async def test_large_bodies_both_ways() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB

    def reverse(request: Request) -> Response:
        return Response(200, request.body[::-1])

    async with serving(reverse) as server, client_for(server.url) as client:
        assert (await client.request("POST", "/", big)).body == big[::-1]


async def test_error_statuses_are_responses() -> None:
    flood = Response(429, b"{}", headers=(("Retry-After", "3"),))
    async with serving(lambda r: flood) as server, client_for(server.url) as client:
        response = await client.request("POST", "/")
        assert (response.status, response.headers["retry-after"]) == (429, "3")


async def test_chunked_and_until_eof_responses() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        if request.startswith(b"GET /chunked"):
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
            )
            request = await read_request(reader)  # the connection stays usable
        if request.startswith(b"GET /interim"):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
            request = await read_request(reader)
        if request.startswith(b"GET /eof"):
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()

    async with raw_serving(handler) as url, client_for(url) as client:
        assert (await client.request("GET", "/chunked")).body == b"hello world"
        assert (await client.request("GET", "/interim")).status == 204
        assert (await client.request("GET", "/eof")).body == b"until the end"


async def test_invalid_response_is_a_transport_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SPDY/9 what is this\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with raw_serving(handler) as url, client_for(url) as client:
        with pytest.raises(TransportError, match="invalid response"):
            await client.request("GET", "/")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="base URL"):
        HTTPClient("ftp://example.org")
    with pytest.raises(ValueError, match="base URL"):
        HTTPClient("http://example.org/?q=1")
    with pytest.raises(ValueError, match="pool_size"):
        HTTPClient("http://example.org", pool_size=0)
    with pytest.raises(ValueError, match="https"):
        HTTPClient("http://example.org", ssl_context=ssl.create_default_context())
    client = HTTPClient("http://example.org")
    with pytest.raises(ValueError, match="line break"):
        client._encode("POST", "/", 0, "text/plain\r\nX-Evil: 1", None)
    with pytest.raises(ValueError, match="header name"):
        client._encode("POST", "/", 0, None, {"Bad Name": "1"})
    with pytest.raises(ValueError, match="space or control"):
        client._encode("GET", "/a b", 0, None, None)
    with pytest.raises(ValueError, match="HEAD"):
        client._encode("HEAD", "/", 0, None, None)
    head = client._encode("GET", "/x", 0, None, None)
    assert head == b"GET /x HTTP/1.1\r\nHost: example.org\r\n\r\n"
    head = client._encode("POST", "/x", 0, None, None)
    assert head == b"POST /x HTTP/1.1\r\nHost: example.org\r\nContent-Length: 0\r\n\r\n"


# -- every scenario above on uvloop as well --------------------------------------------------

SCENARIOS: list[Callable[[], Awaitable[None]]] = [
    test_get_and_post,
    test_base_url_path_prefix,
    test_large_bodies_both_ways,
    test_error_statuses_are_responses,
    test_chunked_and_until_eof_responses,
    test_invalid_response_is_a_transport_error,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_under_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(scenario())  # type: ignore[arg-type]
