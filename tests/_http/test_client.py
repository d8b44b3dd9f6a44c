"""HTTPClient against real servers on loopback: our HTTPServer, and raw asyncio servers for
the behaviours ours never shows (chunked answers, stale keep-alive connections, garbage).

The async tests take no fixtures, so ``test_under_uvloop`` can run the same scenarios on
uvloop. Nothing here sleeps to synchronise: tests wait on events, futures and socket reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop
from servers import serving

from tgrunner._http.server import Request, Response
from tgrunner.client.transports.fast import (
    ClientResponse,
    HTTPClient,
    TransportError,
    TransportTimeout,
)

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
    except asyncio.IncompleteReadError:
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def describe(request: Request) -> Response:
    text = f"{request.method} {request.path} {request.query.decode()} "
    text += f"{request.headers.get('content-type')} {request.headers.get('x-token')} "
    return Response(200, text.encode() + request.body, headers=(("X-Seen", "1"),))


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


# -- connections and the pool ----------------------------------------------------------------


async def test_keep_alive_reuses_one_connection() -> None:
    peers: set[tuple[str, int] | None] = set()

    def handler(request: Request) -> Response:
        peers.add(request.peer)
        return Response()

    async with serving(handler) as server, client_for(server.url) as client:
        for _ in range(10):
            await client.request("POST", "/", b"x")
        assert len(peers) == 1
        assert server.connections == client.connections == 1


async def test_connection_close_answer_is_not_reused() -> None:
    peers: list[tuple[str, int] | None] = []

    def handler(request: Request) -> Response:
        peers.append(request.peer)
        return Response(close=True)

    async with serving(handler) as server, client_for(server.url) as client:
        for _ in range(3):
            await client.request("GET", "/")
        assert len(set(peers)) == 3


async def test_pool_never_exceeds_its_size_and_serves_in_order() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    full = asyncio.Event()
    active = 0
    most = 0
    peers: set[tuple[str, int] | None] = set()
    order: list[bytes] = []

    async def handler(request: Request) -> Response:
        nonlocal active, most
        order.append(request.body)
        peers.add(request.peer)
        active += 1
        most = max(most, active)
        if active == 3:
            full.set()
        await gate
        active -= 1
        return Response(200, request.body)

    async with serving(handler) as server, client_for(server.url, pool_size=3) as client:
        tasks = [asyncio.create_task(client.request("POST", "/", b"%d" % i)) for i in range(20)]
        await full.wait()
        assert order == [b"0", b"1", b"2"]
        gate.set_result(None)
        bodies = [r.body for r in await asyncio.gather(*tasks)]
        assert bodies == [b"%d" % i for i in range(20)]
        # Waiting requests got their connections in the order they asked (FIFO).
        assert order[:3] == [b"0", b"1", b"2"]
        assert sorted(order[3:], key=int) == order[3:]
        assert most == 3
        assert len(peers) == 3
        assert client.connections == 3


async def test_stale_keep_alive_connection_is_retried_once() -> None:
    seen: list[tuple[int, bytes]] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        while request := await read_request(reader):
            seen.append((number, request.split(b" ")[1]))
            if number == 1 and len(seen) == 2:
                writer.close()  # gone without a word, as an idle-timeout close looks
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with raw_serving(handler) as url, client_for(url) as client:
        assert (await client.request("GET", "/first")).body == b"ok"
        assert (await client.request("GET", "/second")).body == b"ok"
    assert seen == [(1, b"/first"), (1, b"/second"), (2, b"/second")]


async def test_fresh_connection_closed_without_answer_is_not_retried() -> None:
    calls = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        await read_request(reader)
        calls += 1
        writer.close()

    async with raw_serving(handler) as url, client_for(url) as client:
        with pytest.raises(TransportError, match="closed the connection before answering"):
            await client.request("GET", "/")
    assert calls == 1


async def test_reset_is_a_transport_error_and_not_retried() -> None:
    calls = 0

    def handler(request: Request) -> Response:
        nonlocal calls
        calls += 1
        return Response(abort=request.path == "/reset")

    async with serving(handler) as server, client_for(server.url) as client:
        await client.request("GET", "/ok")  # so the next request reuses the connection
        with pytest.raises(TransportError) as caught:
            await client.request("GET", "/reset")
        assert isinstance(caught.value.__cause__, ConnectionResetError)
        assert "reset" in str(caught.value).lower()
        assert calls == 2
        # The pool recovers with a new connection.
        assert (await client.request("GET", "/ok")).status == 200


async def test_connection_refused() -> None:
    async with client_for(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TransportError, match="cannot connect") as caught:
            await client.request("GET", "/")
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)


async def test_timeout_discards_the_connection() -> None:
    peers: list[tuple[str, int] | None] = []
    never: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    def handler(request: Request) -> Response | Awaitable[Response]:
        peers.append(request.peer)
        return never if request.path == "/hang" else Response(200, b"ok")

    async with serving(handler) as server, client_for(server.url, pool_size=1) as client:
        await client.request("GET", "/ok")
        with pytest.raises(TransportTimeout, match="no response"):
            await client.request("GET", "/hang", timeout=0.05)
        assert (await client.request("GET", "/ok")).body == b"ok"
        assert peers[0] == peers[1] != peers[2]


async def test_default_timeout_applies() -> None:
    never: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    async with (
        serving(lambda r: never) as server,
        client_for(server.url, default_timeout=0.05) as client,
    ):
        with pytest.raises(TransportTimeout):
            await client.request("GET", "/")


async def test_waiting_for_a_full_pool_times_out() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/hold":
            started.set()
            await gate
        return Response(200, request.path.encode())

    async with serving(handler) as server, client_for(server.url, pool_size=1) as client:
        holder = asyncio.create_task(client.request("GET", "/hold"))
        await started.wait()
        with pytest.raises(TransportTimeout, match="pool is full"):
            await client.request("GET", "/waiter", timeout=0.05)
        gate.set_result(None)
        assert (await holder).body == b"/hold"
        assert (await client.request("GET", "/after")).body == b"/after"


async def test_cancellation_discards_the_connection() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()
    peers: list[tuple[str, int] | None] = []

    async def handler(request: Request) -> Response:
        peers.append(request.peer)
        if request.path == "/hold":
            started.set()
            await gate
        return Response(200, request.path.encode())

    async with serving(handler) as server, client_for(server.url, pool_size=1) as client:
        await client.request("GET", "/first")
        task = asyncio.create_task(client.request("GET", "/hold"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set_result(None)
        # The one slot is free again, and its connection was not reused half-way.
        assert (await client.request("GET", "/after")).body == b"/after"
        assert peers[0] == peers[1] != peers[2]


async def test_cancelled_waiter_does_not_leak_its_slot() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/hold":
            started.set()
            await gate
        return Response(200, request.path.encode())

    async with serving(handler) as server, client_for(server.url, pool_size=1) as client:
        holder = asyncio.create_task(client.request("GET", "/hold"))
        await started.wait()
        waiter = asyncio.create_task(client.request("GET", "/w"))
        await yield_until(lambda: len(client._waiters) == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.set_result(None)
        await holder
        assert (await client.request("GET", "/next")).body == b"/next"


async def test_close_twice_and_requests_after_close() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def handler(request: Request) -> Response:
        started.set()
        await gate
        return Response()

    async with serving(handler) as server:
        client = HTTPClient(server.url)
        task = asyncio.create_task(client.request("GET", "/"))
        await started.wait()
        await client.close()
        await client.close()
        with pytest.raises(TransportError, match="closed"):
            await task
        with pytest.raises(TransportError, match="closed"):
            await client.request("GET", "/")
        assert client.connections == 0
        gate.set_result(None)


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


# -- HTTPS -----------------------------------------------------------------------------------


def _certificate(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        async with serving(describe, ssl=server_context) as server:
            assert server.url.startswith("https://")
            async with client_for(server.url, ssl_context=client_context) as client:
                for _ in range(3):
                    assert (await client.request("POST", "/s", b"!")).body.endswith(b"!")
                assert server.connections == 1
            # Without trusting the certificate, the handshake fails.
            async with client_for(server.url) as client:
                with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
                    await client.request("GET", "/")

    asyncio.run(scenario())


# -- every scenario above on uvloop as well --------------------------------------------------

SCENARIOS: list[Callable[[], Awaitable[None]]] = [
    test_get_and_post,
    test_base_url_path_prefix,
    test_large_bodies_both_ways,
    test_error_statuses_are_responses,
    test_chunked_and_until_eof_responses,
    test_invalid_response_is_a_transport_error,
    test_keep_alive_reuses_one_connection,
    test_connection_close_answer_is_not_reused,
    test_pool_never_exceeds_its_size_and_serves_in_order,
    test_stale_keep_alive_connection_is_retried_once,
    test_fresh_connection_closed_without_answer_is_not_retried,
    test_reset_is_a_transport_error_and_not_retried,
    test_connection_refused,
    test_timeout_discards_the_connection,
    test_default_timeout_applies,
    test_waiting_for_a_full_pool_times_out,
    test_cancellation_discards_the_connection,
    test_cancelled_waiter_does_not_leak_its_slot,
    test_close_twice_and_requests_after_close,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_under_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(scenario())  # type: ignore[arg-type]


def test_one_client_across_event_loops() -> None:
    """A client made outside any loop can be used by one ``asyncio.run`` after another."""
    port = free_port()
    client = HTTPClient(f"http://127.0.0.1:{port}")

    async def scenario() -> None:
        async with serving(describe, port=port):
            assert (await client.request("GET", "/")).status == 200

    asyncio.run(scenario())
    asyncio.run(scenario())
    asyncio.run(client.close())
