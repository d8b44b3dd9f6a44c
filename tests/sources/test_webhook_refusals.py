"""Every request the webhook source refuses, over raw sockets: none of them reaches the runtime.
Then slow clients (header and body timeouts), too many connections, and X-Forwarded-For."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from webhook_support import (
    SECRET,
    Driver,
    closed_by_server,
    exchange,
    read_answer,
    request,
    serving,
    update,
    yield_until,
)

from tgrunner.testing import FakeTelegram

BAD = [
    pytest.param(request(path="/other"), 404, id="wrong-path"),
    pytest.param(request(path="/hook/x"), 404, id="longer-path"),
    pytest.param(request(method="GET", path="/other"), 404, id="path-before-method"),
    pytest.param(request(method="GET"), 405, id="get"),
    pytest.param(request(method="PUT"), 405, id="put"),
    pytest.param(request(method="POST", secret=None), 401, id="no-secret"),
    pytest.param(request(secret="s3cret-Token_2"), 401, id="wrong-secret"),
    pytest.param(request(secret=SECRET + "x"), 401, id="longer-secret"),
    pytest.param(request(method="GET", secret=None), 405, id="method-before-secret"),
    pytest.param(request(content_type="text/plain"), 415, id="text-plain"),
    pytest.param(request(content_type=None), 415, id="no-content-type"),
    pytest.param(request(secret=None, content_type=None), 401, id="secret-before-type"),
    pytest.param(request(headers={"Content-Encoding": "gzip"}), 415, id="compressed"),
    pytest.param(request(b"x" * 101), 413, id="too-large"),
    pytest.param(request(b"", length=10_000_000), 413, id="too-large-by-length"),
    pytest.param(request(b"{not json"), 400, id="malformed-json"),
    pytest.param(request(b"\xff\xfe\x00"), 400, id="not-utf8"),
    pytest.param(request(b""), 400, id="empty"),
    pytest.param(request([{"update_id": 1}]), 400, id="a-list"),
    pytest.param(request({"message": {}}), 400, id="no-update-id"),
    pytest.param(request({"update_id": "1"}), 400, id="update-id-a-string"),
    pytest.param(request({"update_id": 1.0}), 400, id="update-id-a-float"),
    pytest.param(request({"update_id": True}), 400, id="update-id-a-bool"),
    pytest.param(request({"update_id": -1}), 400, id="update-id-negative"),
    pytest.param(request(b'{"update_id": 1e999}'), 400, id="update-id-huge"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("data", "status"), BAD)
async def test_a_bad_request_is_refused(tg: FakeTelegram, data: bytes, status: int) -> None:
    async with serving(tg, secret=SECRET, max_body=100) as src, Driver(src) as drv:
        answer = await exchange(src.port, data)
        assert answer.status == status
        if status == 405:
            assert answer.headers["allow"] == "POST"
        assert src.responses == {status: 1}
        # Nothing reached the runtime, and a good update still goes through.
        assert src.pending == 0
        assert (await exchange(src.port, request(update(7)))).status == 200
        assert drv.ids == [7]


@pytest.mark.timeout(20)
async def test_a_client_not_allowed_gets_403_before_anything_else(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET, allow_ips=("telegram", "10.0.0.0/8")) as src:
        answer = await exchange(src.port, request(path="/other", secret=None))
        assert answer.status == 403
        assert src.pending == 0
    async with serving(tg, secret=SECRET, allow_ips=("127.0.0.1/32",)) as src, Driver(src) as d:
        assert (await exchange(src.port, request(update(1)))).status == 200
        assert d.ids == [1]


def chunked(*parts: bytes) -> bytes:
    head = request(b"", headers={"Transfer-Encoding": "chunked"})
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return head + body + b"0\r\n\r\n"


@pytest.mark.timeout(20)
async def test_a_chunked_body_past_the_limit_is_413(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET, max_body=100) as src, Driver(src) as drv:
        answer = await exchange(src.port, chunked(b'{"update_id": 1, "x": "', b"y" * 200, b'"}'))
        assert answer.status == 413
        assert answer.headers.get("connection") == "close"
        fine = chunked(b'{"update_id":', b" 2}")
        assert (await exchange(src.port, fine)).status == 200
        assert drv.ids == [2]


@pytest.mark.timeout(20)
async def test_a_body_that_stalls_is_408(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET, body_timeout=0.3) as src:
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        try:
            writer.write(request(b'{"update_id": 1', length=40))  # 25 bytes short
            async with asyncio.timeout(5):
                answer = await read_answer(reader)
            assert answer.status == 408
            assert await closed_by_server(reader, 5)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert src.pending == 0


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"POST /hook HT", id="half-a-request-line"),
        pytest.param(b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Te", id="half-a-header"),
    ],
)
async def test_headers_that_do_not_come_in_time_close_the_connection(
    tg: FakeTelegram, sent: bytes
) -> None:
    async with serving(tg, secret=SECRET, header_timeout=0.3) as src:
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        try:
            writer.write(sent)
            loop = asyncio.get_running_loop()
            began = loop.time()
            assert await closed_by_server(reader, 5)
            assert loop.time() - began < 2
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await yield_until(lambda: src.open_connections == 0)


@pytest.mark.timeout(20)
async def test_the_header_timeout_also_guards_the_next_request_on_a_kept_alive_connection(
    tg: FakeTelegram,
) -> None:
    # 1 s: long enough that a collection pause cannot time out the first, complete request.
    async with serving(tg, secret=SECRET, header_timeout=1.0) as src, Driver(src) as drv:
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        try:
            writer.write(request(update(1)))
            assert (await read_answer(reader)).status == 200
            writer.write(b"POST /hook HTTP/1.1\r\nHo")
            assert await closed_by_server(reader, 5)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert drv.ids == [1]


@pytest.mark.timeout(20)
async def test_connections_past_max_open_are_closed_at_once(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET, max_open=3) as src, Driver(src) as drv:
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for i in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
                conns.append((reader, writer))
                writer.write(request(update(i)))  # answered: the server holds it open
                assert (await read_answer(reader)).status == 200
            assert src.open_connections == 3
            reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
            conns.append((reader, writer))
            assert await closed_by_server(reader, 1)
            # Once one closes, a new connection is served again.
            conns[0][1].close()
            await yield_until(lambda: src.open_connections == 2)
            assert (await exchange(src.port, request(update(5)))).status == 200
        finally:
            for _, writer in conns:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        assert drv.ids == [0, 1, 2, 5]


def forwarded(xff: str) -> bytes:
    return request(update(1), headers={"X-Forwarded-For": xff})


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("options", "xff", "status"),
    [
        # The peer (127.0.0.1) is not a trusted proxy: the header is ignored either way.
        pytest.param({"allow_ips": ("127.0.0.1",)}, "203.0.113.9", 200, id="ignored-allowed"),
        pytest.param({"allow_ips": ("203.0.113.0/24",)}, "203.0.113.9", 403, id="ignored-spoof"),
        # From a trusted proxy: the right-most address that is not a proxy is the client.
        pytest.param(
            {"allow_ips": ("203.0.113.0/24",), "trusted_proxies": ("127.0.0.1",)},
            "203.0.113.9",
            200,
            id="trusted-allowed",
        ),
        pytest.param(
            {"allow_ips": ("203.0.113.0/24",), "trusted_proxies": ("127.0.0.0/8", "10.0.0.0/8")},
            "198.51.100.1, 203.0.113.9, 10.1.1.1",
            200,
            id="right-most-non-proxy",
        ),
        pytest.param(
            {"allow_ips": ("203.0.113.0/24",), "trusted_proxies": ("127.0.0.1",)},
            "203.0.113.9, 198.51.100.1",
            403,
            id="left-entries-are-not-believed",
        ),
        pytest.param(
            {"allow_ips": ("telegram",), "trusted_proxies": ("127.0.0.1",)},
            "149.154.167.220",
            200,
            id="telegram",
        ),
        pytest.param(
            {"allow_ips": ("127.0.0.1",), "trusted_proxies": ("127.0.0.1",)},
            "not-an-address",
            403,
            id="garbled",
        ),
    ],
)
async def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    tg: FakeTelegram, options: dict[str, Any], xff: str, status: int
) -> None:
    async with serving(tg, secret=SECRET, **options) as src, Driver(src) as drv:
        assert (await exchange(src.port, forwarded(xff))).status == status
        assert drv.ids == ([1] if status == 200 else [])


@pytest.mark.timeout(20)
async def test_refusals_are_logged_once_per_kind_without_the_secret(
    tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tg, secret=SECRET) as src:
        for _ in range(3):
            assert (await exchange(src.port, request(secret="wrong-" + SECRET))).status == 401
        assert (await exchange(src.port, request(method="GET"))).status == 405
    lines = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert len(lines) == 2
    assert "401" in lines[0] and "405" in lines[1]
    assert all(SECRET not in line for line in caplog.messages)
