"""HTTPServer against raw sockets on loopback: framing, keep-alive, pipelining, bad input.

The async tests take no fixtures, so ``test_under_uvloop`` can run the same scenarios on
uvloop. Nothing here sleeps to synchronise: tests wait on events, futures and socket reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servers import serving
from tgrunner._http.server import HTTPServer, Request, Response

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter

INTERNAL = b'{"ok":false,"error_code":500,"description":"Internal Server Error"}'
TOO_LARGE = b'{"ok":false,"error_code":413,"description":"Request Entity Too Large"}'


async def connect(server: HTTPServer) -> tuple[Reader, Writer]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_response(reader: Reader, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = b"" if head else await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


def get(path: str = "/", *, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, *, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def logged() -> Iterator[list[logging.LogRecord]]:
    """Every WARNING-or-worse record logged anywhere while the block runs."""
    handler = _Records()
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)


async def yield_until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds: progress, not time, is what is awaited."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def echo(request: Request) -> Response:
    return Response(200, request.body, content_type="text/plain")


# -- basics ------------------------------------------------------------------------------------


async def test_get_and_post() -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(201, b'{"ok":true}', headers=(("X-Extra", "yes"),))

    async with serving(handler) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        reader, writer = await connect(server)
        writer.write(get("/a%20b/c?x=1&y=%20", extra="X-Custom: One\r\nX-Custom: Two\r\n"))
        status, headers, body = await read_response(reader)
        assert (status, body) == (201, b'{"ok":true}')
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "keep-alive"
        assert headers["x-extra"] == "yes"
        assert headers["content-length"] == "11"
        writer.write(post("/bot1:x/sendMessage", b"hello", extra="Content-Type: text/plain\r\n"))
        assert (await read_response(reader))[0] == 201
        writer.close()

    first, second = seen
    assert (first.method, first.path, first.query, first.body) == (
        "GET",
        "/a b/c",
        b"x=1&y=%20",
        b"",
    )
    assert first.headers["x-custom"] == "One, Two"
    assert first.headers["host"] == "t"
    assert first.peer is not None
    assert first.peer[0] == "127.0.0.1"
    assert (second.method, second.path, second.query) == ("POST", "/bot1:x/sendMessage", b"")
    assert (second.body, second.headers["content-type"]) == (b"hello", "text/plain")


async def test_async_handler() -> None:
    async def handler(request: Request) -> Response:
        await asyncio.sleep(0)
        return Response(200, b"async:" + request.body)

    async with serving(handler) as server:
        reader, writer = await connect(server)
        writer.write(post("/", b"x"))
        assert (await read_response(reader))[2] == b"async:x"
        writer.close()


async def test_keep_alive_reuses_one_connection() -> None:
    peers: set[tuple[str, int] | None] = set()

    def handler(request: Request) -> Response:
        peers.add(request.peer)
        return echo(request)

    async with serving(handler) as server:
        reader, writer = await connect(server)
        for i in range(5):
            writer.write(post("/", str(i).encode()))
            assert (await read_response(reader))[2] == str(i).encode()
        assert server.connections == 1
        assert len(peers) == 1
        writer.close()


async def test_chunked_request_body() -> None:
    async with serving(echo) as server:
        reader, writer = await connect(server)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        assert (await read_response(reader))[2] == b"hello world"
        writer.close()


async def test_head_gets_length_but_no_body() -> None:
    async with serving(lambda r: Response(200, b"0123456789")) as server:
        reader, writer = await connect(server)
        writer.write(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get())
        status, headers, _ = await read_response(reader, head=True)
        assert (status, headers["content-length"]) == (200, "10")
        assert (await read_response(reader))[2] == b"0123456789"
        writer.close()


# -- connection management -----------------------------------------------------------------


async def test_connection_close_is_honoured() -> None:
    async with serving(echo) as server:
        reader, writer = await connect(server)
        writer.write(post("/", b"bye", extra="Connection: close\r\n"))
        _, headers, body = await read_response(reader)
        assert (headers["connection"], body) == ("close", b"bye")
        assert await reader.read() == b""
        writer.close()


async def test_response_close_closes() -> None:
    async with serving(lambda r: Response(200, b"x", close=True)) as server:
        reader, writer = await connect(server)
        writer.write(get() + get())  # the second is never answered
        assert (await read_response(reader))[1]["connection"] == "close"
        assert await reader.read() == b""
        writer.close()


async def test_http10_closes_unless_keep_alive_asked() -> None:
    async with serving(echo) as server:
        reader, writer = await connect(server)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert (await read_response(reader))[1]["connection"] == "close"
        assert await reader.read() == b""
        writer.close()

        reader, writer = await connect(server)
        for _ in range(2):
            writer.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert (await read_response(reader))[1]["connection"] == "keep-alive"
        writer.close()


async def test_idle_connection_closes_after_keepalive_timeout() -> None:
    async with serving(echo, keepalive_timeout=0.05) as server:
        reader, writer = await connect(server)
        writer.write(get())
        await read_response(reader)
        assert await reader.read() == b""  # the server closed the idle connection
        writer.close()


async def test_busy_connection_outlives_keepalive_timeout() -> None:
    timer_fired = asyncio.Event()

    async def handler(request: Request) -> Response:
        await timer_fired.wait()
        return Response(200, b"late")

    async with serving(handler, keepalive_timeout=0.02) as server:
        reader, writer = await connect(server)
        writer.write(get())
        # Outlast the keep-alive timeout several times over while the handler runs.
        asyncio.get_running_loop().call_later(0.1, timer_fired.set)
        assert (await read_response(reader))[2] == b"late"
        writer.close()


async def test_half_closed_client_is_still_answered() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def handler(request: Request) -> Response:
        started.set()
        await release.wait()
        return Response(200, b"answer")

    async with serving(handler) as server:
        reader, writer = await connect(server)
        writer.write(get())
        writer.write_eof()
        await started.wait()
        (conn,) = server._connections
        await yield_until(lambda: conn._close_when_done)  # the server has seen the EOF
        release.set()
        assert (await read_response(reader))[2] == b"answer"
        assert await reader.read() == b""
        writer.close()


async def test_close_twice_closes_idle_and_busy_connections() -> None:
    started = asyncio.Event()

    async def stuck(request: Request) -> Response:
        started.set()
        await asyncio.Future()  # never answers
        raise AssertionError

    server = HTTPServer(stuck)
    await server.start()
    idle_reader, idle_writer = await connect(server)
    busy_reader, busy_writer = await connect(server)
    busy_writer.write(get())
    await started.wait()
    assert server.connections == 2
    await server.close()
    await server.close()
    assert server.connections == 0
    assert await idle_reader.read() == b""
    assert await busy_reader.read() == b""
    for writer in (idle_writer, busy_writer):
        writer.close()
    with pytest.raises(ConnectionRefusedError):
        await connect(server)


# -- pipelining ------------------------------------------------------------------------------


async def test_pipelined_requests_answered_in_order_with_mixed_handlers() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    first_called = asyncio.Event()
    calls: list[str] = []

    async def slow(request: Request) -> Response:
        first_called.set()
        await gate
        return Response(200, b"slow")

    async def quick(request: Request) -> Response:
        return Response(200, b"quick")

    def handler(request: Request) -> Response | Awaitable[Response]:
        calls.append(request.path)
        if request.path == "/slow":
            return slow(request)
        if request.path == "/quick":
            return quick(request)
        return Response(200, request.path.encode())

    async with serving(handler) as server:
        reader, writer = await connect(server)
        writer.write(get("/sync1") + get("/slow") + get("/sync2") + get("/quick") + get("/sync3"))
        assert (await read_response(reader))[2] == b"/sync1"
        await first_called.wait()
        # Requests behind the slow one wait for it: none of them was dispatched yet.
        assert calls == ["/sync1", "/slow"]
        gate.set_result(None)
        bodies = [(await read_response(reader))[2] for _ in range(4)]
        assert bodies == [b"slow", b"/sync2", b"quick", b"/sync3"]
        assert calls == ["/sync1", "/slow", "/sync2", "/quick", "/sync3"]
        writer.close()


async def test_reading_pauses_when_many_requests_queue_up() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await gate
        return Response(200, b"first")

    def handler(request: Request) -> Response | Awaitable[Response]:
        return slow(request) if request.path == "/slow" else Response(200, request.query)

    async with serving(handler) as server:
        reader, writer = await connect(server)
        writer.write(get("/slow") + b"".join(get(f"/?{i}") for i in range(40)))
        await started.wait()
        (conn,) = server._connections
        await yield_until(lambda: len(conn._queue) == 40)
        assert conn._read_paused
        # Further requests stay in the socket buffers while reading is paused.
        writer.write(b"".join(get(f"/?{i}") for i in range(40, 100)))
        await writer.drain()
        for _ in range(100):
            await asyncio.sleep(0)
        assert len(conn._queue) == 40
        gate.set_result(None)
        assert (await read_response(reader))[2] == b"first"
        for i in range(100):
            assert (await read_response(reader))[2] == str(i).encode()
        assert not conn._read_paused
        writer.close()


async def pipelined_batch(kinds: list[int]) -> None:
    """Send one pipelined batch; kind 0 answers sync, k > 0 after k loop turns."""

    async def later(request: Request, turns: int) -> Response:
        for _ in range(turns):
            await asyncio.sleep(0)
        return Response(200, request.query)

    def handler(request: Request) -> Response | Awaitable[Response]:
        turns = int(request.path[1:])
        return Response(200, request.query) if turns == 0 else later(request, turns)

    async with serving(handler) as server:
        reader, writer = await connect(server)
        writer.write(b"".join(get(f"/{kind}?{i}") for i, kind in enumerate(kinds)))
        for i in range(len(kinds)):
            assert (await read_response(reader))[2] == str(i).encode()
        writer.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60))
def test_any_pipelined_batch_is_answered_in_order(kinds: list[int]) -> None:
    asyncio.run(pipelined_batch(kinds))


# -- errors and bad input --------------------------------------------------------------------


async def test_handler_exception_gives_500_and_server_keeps_serving() -> None:
    def handler(request: Request) -> Response | Awaitable[Response]:
        if request.path == "/sync-boom":
            raise RuntimeError("sync boom")
        if request.path == "/async-boom":
            return async_boom()
        if request.path == "/not-a-response":
            return "oops"  # type: ignore[return-value]
        return Response(200, b"fine")

    async def async_boom() -> Response:
        raise RuntimeError("async boom")

    with logged() as records:
        async with serving(handler) as server:
            reader, writer = await connect(server)
            for path in ("/sync-boom", "/async-boom", "/not-a-response"):
                writer.write(get(path))
                status, headers, body = await read_response(reader)
                assert (status, body) == (500, INTERNAL)
                assert headers["connection"] == "keep-alive"
            writer.write(get("/ok"))
            assert (await read_response(reader))[2] == b"fine"
            writer.close()
    assert len(records) == 3
    assert all(r.exc_info is not None for r in records)
    assert "sync boom" in str(records[0].exc_info[1])  # type: ignore[index]


async def test_malformed_request_gets_400_and_close() -> None:
    calls: list[Request] = []
    async with serving(lambda r: calls.append(r) or Response()) as server:
        reader, writer = await connect(server)
        writer.write(b"THIS IS NOT\x00 HTTP\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert (status, headers["connection"]) == (400, "close")
        assert await reader.read() == b""
        writer.close()
    assert calls == []


async def test_oversized_head_gets_431() -> None:
    async with serving(echo) as server:
        reader, writer = await connect(server)
        writer.write(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100_000)
        assert (await read_response(reader))[0] == 431
        assert await reader.read() == b""
        writer.close()


async def test_too_large_by_content_length_gets_413_before_the_body() -> None:
    calls: list[Request] = []
    async with serving(lambda r: calls.append(r) or Response(), max_body=1000) as server:
        reader, writer = await connect(server)
        # Only the head is sent: the answer must not wait for the body.
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert (status, body, headers["connection"]) == (413, TOO_LARGE, "close")
        assert await reader.read() == b""
        writer.close()
    assert calls == []


async def test_too_large_chunked_gets_413_while_streaming() -> None:
    calls: list[Request] = []
    async with serving(lambda r: calls.append(r) or Response(), max_body=1000) as server:
        reader, writer = await connect(server)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"200\r\n" + b"x" * 0x200 + b"\r\n"
        writer.write(chunk * 3)  # 1536 bytes so far, and the body goes on
        status, _, body = await read_response(reader)
        assert (status, body) == (413, TOO_LARGE)
        # The client may keep sending: the server drains it, then closes.
        writer.write(chunk * 10)
        assert await reader.read() == b""
        writer.close()
    assert calls == []


async def test_truncated_body_is_never_dispatched() -> None:
    calls: list[str] = []

    def handler(request: Request) -> Response:
        calls.append(request.path)
        return Response()

    with logged() as records:
        async with serving(handler) as server:
            reader, writer = await connect(server)
            writer.write(b"POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-a-part")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            # A full exchange on a new connection: by its answer the server has seen the EOF.
            reader, writer = await connect(server)
            writer.write(get("/whole"))
            await read_response(reader)
            assert server.connections == 1
            writer.close()
    assert calls == ["/whole"]
    assert records == []


async def test_expect_100_continue() -> None:
    async with serving(echo) as server:
        reader, writer = await connect(server)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        assert (await read_response(reader))[2] == b"body"
        writer.close()


async def test_expect_100_continue_over_the_limit_gets_413() -> None:
    async with serving(echo, max_body=10) as server:
        reader, writer = await connect(server)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
        )
        assert (await read_response(reader))[0] == 413
        writer.close()


async def test_abort_resets_the_connection() -> None:
    async with serving(lambda r: Response(abort=True)) as server:
        reader, writer = await connect(server)
        writer.write(get())
        with pytest.raises(ConnectionResetError):
            await reader.read()
        writer.close()


# -- every scenario above on uvloop as well --------------------------------------------------

SCENARIOS: list[Callable[[], Awaitable[None]]] = [
    test_get_and_post,
    test_async_handler,
    test_keep_alive_reuses_one_connection,
    test_chunked_request_body,
    test_head_gets_length_but_no_body,
    test_connection_close_is_honoured,
    test_response_close_closes,
    test_http10_closes_unless_keep_alive_asked,
    test_idle_connection_closes_after_keepalive_timeout,
    test_busy_connection_outlives_keepalive_timeout,
    test_half_closed_client_is_still_answered,
    test_close_twice_closes_idle_and_busy_connections,
    test_pipelined_requests_answered_in_order_with_mixed_handlers,
    test_reading_pauses_when_many_requests_queue_up,
    test_handler_exception_gives_500_and_server_keeps_serving,
    test_malformed_request_gets_400_and_close,
    test_oversized_head_gets_431,
    test_too_large_by_content_length_gets_413_before_the_body,
    test_too_large_chunked_gets_413_while_streaming,
    test_truncated_body_is_never_dispatched,
    test_expect_100_continue,
    test_expect_100_continue_over_the_limit_gets_413,
    test_abort_resets_the_connection,
    lambda: pipelined_batch([0, 2, 0, 1, 3, 0, 0, 1]),
]


@pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=[getattr(s, "__name__", "pipelined_batch") for s in SCENARIOS]
)
def test_under_uvloop(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(scenario())  # type: ignore[arg-type]


def test_port_and_validation() -> None:
    with pytest.raises(ValueError, match="keepalive_timeout"):
        HTTPServer(echo, keepalive_timeout=0)
    server = HTTPServer(echo, host="::1", port=8081)
    assert (server.port, server.url) == (8081, "http://[::1]:8081")


def test_free_port_is_bound() -> None:
    async def scenario() -> None:
        async with serving(echo) as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5):
                pass

    asyncio.run(scenario())
