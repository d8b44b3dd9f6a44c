"""Micro-benchmark of tgrunner's HTTP server and client (``tgrunner._http``).

The server runs a trivial synchronous handler (a canned ``sendMessage`` answer) in a child
process; this process hammers it with :class:`HTTPClient` over ``--connections`` keep-alive
connections for ``--seconds``. The server measures its own CPU time (``time.process_time``)
between a ``/__start`` and a ``/__stop`` request, so the figure is CPU per request on the server
side only, whatever the client costs.

    .venv/bin/python bench/http_micro.py                 # both loops
    .venv/bin/python bench/http_micro.py --loop uvloop --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tgrunner._http import HTTPServer, Request, Response
from tgrunner.client.transports.fast import HTTPClient

REQUEST = orjson.dumps({"chat_id": 123456789, "text": "hello, this is an echo of your message"})
ANSWER = orjson.dumps(
    {
        "ok": True,
        "result": {
            "message_id": 42,
            "from": {"id": 1, "is_bot": True, "first_name": "Bench", "username": "bench_bot"},
            "chat": {"id": 123456789, "first_name": "Alice", "type": "private"},
            "date": 1700000000,
            "text": "hello, this is an echo of your message",
        },
    }
)


def _run(main: Callable[[], Awaitable[Any]], loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def _serve(loop: str, ports: Any) -> None:
    """The server process: answers until /__exit."""
    counter = {"n": 0, "n0": 0, "cpu0": 0.0}
    done: asyncio.Future[None] | None = None
    ok = Response(200, ANSWER)

    def handler(request: Request) -> Response:
        counter["n"] += 1
        if request.path[:3] != "/__":
            return ok
        if request.path == "/__start":
            counter["n0"] = counter["n"]
            counter["cpu0"] = time.process_time()
            return ok
        if request.path == "/__stop":
            cpu = time.process_time() - counter["cpu0"]
            n = counter["n"] - counter["n0"] - 1
            return Response(200, orjson.dumps({"cpu": cpu, "requests": n}))
        assert done is not None
        done.set_result(None)
        return Response(200, b"{}", close=True)

    async def main() -> None:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        server = HTTPServer(handler)
        await server.start()
        ports.put(server.port)
        await done
        await server.close()

    _run(main, loop)


async def _hammer(url: str, connections: int, seconds: float) -> dict[str, float]:
    client = HTTPClient(url, pool_size=connections)
    count = 0

    async def worker(stop_at: float) -> None:
        nonlocal count
        loop = asyncio.get_running_loop()
        while loop.time() < stop_at:
            response = await client.request(
                "POST", "/bot1:x/sendMessage", REQUEST, content_type="application/json"
            )
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            count += 1

    loop = asyncio.get_running_loop()
    # Warm up the pool and the server's caches, then measure.
    await asyncio.gather(*(worker(loop.time() + 0.3) for _ in range(connections)))
    await client.request("GET", "/__start")
    count = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(loop.time() + seconds) for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    client_cpu = time.process_time() - cpu0
    stats = orjson.loads((await client.request("GET", "/__stop")).body)
    await client.request("GET", "/__exit")
    await client.close()
    return {
        "requests": count,
        "rps": count / elapsed,
        "server_us": stats["cpu"] / stats["requests"] * 1e6,
        "client_us": client_cpu / count * 1e6,
    }


def bench(loop: str, connections: int, seconds: float) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(loop, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        url = f"http://127.0.0.1:{port}"
        return _run(lambda: _hammer(url, connections, seconds), loop)
    finally:
        server.join(timeout=10)
        if server.is_alive():
            server.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="both")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    for loop in loops:
        r = bench(loop, args.connections, args.seconds)
        sys.stdout.write(
            f"{loop:8} {r['rps']:9,.0f} req/s  server {r['server_us']:5.1f} µs CPU/req  "
            f"client {r['client_us']:5.1f} µs CPU/req  ({r['requests']:,.0f} requests, "
            f"{args.connections} connections)\n"
        )


if __name__ == "__main__":
    main()
