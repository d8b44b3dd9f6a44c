"""Property tests of HTTPClient's pool under a server that misbehaves at random: whatever the
server does, no request reaches it twice, a success carries its own answer, and the pool
never holds more connections than its size.

Each request is counted by the server as it reads it; the client may not send one twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loopback import client_for, raw_serving, read_request

from tgrunner.client.transports.fast import TransportError

# What the server does with a request: answer; answer, then close while the connection is
# pooled; read it and close without a word; answer half, then close.
BEHAVIOURS = ("ok", "ok-close", "close", "partial")


async def scenario(plan: list[str], pool_size: int) -> None:
    seen: Counter[bytes] = Counter()
    open_now = most = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while request := await read_request(reader):
                target = request.split(b" ")[1]
                seen[target] += 1
                what = target.split(b"/")[2].decode()
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (
                    len(target),
                    target,
                )
                if what == "close":
                    return
                if what == "partial":
                    writer.write(answer[:-1])
                    await writer.drain()
                    return
                writer.write(answer)
                await writer.drain()
                if what == "ok-close":
                    return
        finally:
            open_now -= 1

    async with raw_serving(handler) as url, client_for(url, pool_size=pool_size) as client:

        async def one(i: int, what: str) -> tuple[str, bytes | TransportError]:
            path = f"/{i}/{what}"
            try:
                response = await client.request("POST", path, b"x", timeout=5)
            except TransportError as exc:
                return path, exc
            return path, response.body

        results = await asyncio.gather(*(one(i, what) for i, what in enumerate(plan)))
        assert client.connections <= pool_size
    assert most <= pool_size
    assert all(count == 1 for count in seen.values()), seen
    for path, outcome in results:
        what = path.rsplit("/", 1)[1]
        if isinstance(outcome, TransportError):
            assert outcome.sent and not isinstance(outcome, TimeoutError)
            # A request the server meant to answer failed only if it went on a connection the
            # server had just closed, and then the server never read it.
            assert not what.startswith("ok") or seen[path.encode()] == 0
        else:
            assert what.startswith("ok") and outcome == path.encode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=30),
    pool_size=st.integers(min_value=1, max_value=4),
)
def test_no_request_reaches_the_server_twice(plan: list[str], pool_size: int) -> None:
    asyncio.run(scenario(plan, pool_size))
