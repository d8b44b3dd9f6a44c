"""HTTPClient's keep-alive pool against real servers on loopback: reuse, limits, FIFO order,
timeouts, cancellation, close.

The async tests take no fixtures, so ``test_under_uvloop`` can run the same scenarios on
uvloop. Nothing here sleeps to synchronise: tests wait on events, futures and socket reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from loopback import (
    client_for,
    describe,
    free_port,
    raw_serving,
    read_request,
    serving,
    yield_until,
)

from tgrunner._http.server import Request, Response
from tgrunner.client.transports.fast import HTTPClient, TransportError, TransportTimeout

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


# -- every scenario above on uvloop as well --------------------------------------------------

SCENARIOS: list[Callable[[], Awaitable[None]]] = [
    test_keep_alive_reuses_one_connection,
    test_connection_close_answer_is_not_reused,
    test_pool_never_exceeds_its_size_and_serves_in_order,
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
