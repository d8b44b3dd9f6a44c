"""Thousands of random requests against one webhook server: each is answered (or its
connection closed) within a bound, as a model of the checks says, nothing invalid reaches
``next_batch``, nothing crashes, and a valid update is still served afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webhook_support import SECRET, Driver, exchange, read_answer, request, serving, update

from tgrunner.sources.webhook import WebhookSource
from tgrunner.testing import FakeTelegram

MAX_BODY = 2000
# The server's header and body timeouts. A full collection in this process (hypothesis keeps a
# large heap) has stalled the loop for 0.56 s, so a timeout of 0.5 s could close a well-formed
# request before its headers were read: the kernel then resets the connection.
TIMEOUT = 2.0
BOUND = TIMEOUT + 3.0  # seconds within which every request is answered or its connection closed

ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
updates = st.builds(
    lambda uid, extra: {**extra, "update_id": uid},
    st.integers(min_value=0, max_value=50),
    st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3),
)


@dataclass
class Shaped:
    """A well-formed HTTP request whose answer the model predicts."""

    method: str
    path: str
    secret: str | None
    content_type: str | None
    body: bytes
    headers: dict[str, str]

    def expected(self) -> int:
        if not self.method.isupper():
            return 400  # aiohttp's parser refuses a method that is not upper case
        if self.path != "/hook":
            return 404
        if self.method != "POST":
            return 405
        if self.secret != SECRET:
            return 401
        ctype = (self.content_type or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return 415
        if len(self.body) > MAX_BODY:
            return 413
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return 400
        uid = value.get("update_id") if type(value) is dict else None
        return 200 if type(uid) is int and uid >= 0 else 400

    def raw(self) -> bytes:
        return request(
            self.body,
            method=self.method,
            path=self.path,
            secret=self.secret,
            content_type=self.content_type,
            headers=self.headers,
        )


shaped = st.builds(
    Shaped,
    method=st.sampled_from(["POST", "POST", "GET", "PUT", "HEAD", "DELETE", "PATCH", "post"]),
    path=st.sampled_from(["/hook", "/hook", "/", "/hook/", "/Hook"])
    | st.from_regex(r"/[A-Za-z0-9/_.-]{0,16}", fullmatch=True),
    secret=st.sampled_from([SECRET, SECRET, None, "", SECRET[:-1], SECRET + "0"]),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/plain",
            "application/jsonx",
            None,
        ]
    ),
    body=st.one_of(
        updates.map(orjson.dumps),
        json_values.map(orjson.dumps),
        st.binary(max_size=MAX_BODY + 200),
        st.just(b"x" * (MAX_BODY + 1)),
    ),
    headers=st.dictionaries(
        st.from_regex(r"X-F-[A-Za-z0-9-]{1,10}", fullmatch=True),
        st.from_regex(r"[ -~]{0,30}", fullmatch=True).map(str.strip),
        max_size=3,
    ),
)
# Anything at all, then the client's end of the connection closes.
garbage = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda s, tail: s.raw()[: len(tail)], shaped, st.binary(max_size=400)),
)


async def one_shaped(src: WebhookSource, req: Shaped) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
    try:
        async with asyncio.timeout(BOUND):
            writer.write(req.raw())
            if req.method == "HEAD":
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split()[1])
            else:
                status = (await read_answer(reader)).status
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    assert status == req.expected(), req


async def one_garbage(src: WebhookSource, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
    answer = b""
    try:
        async with asyncio.timeout(BOUND):
            writer.write(data)
            writer.write_eof()
            while chunk := await reader.read(65536):
                answer += chunk
    except ConnectionError:
        pass  # closed by the server: fine
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    assert b"HTTP/1.1 5" not in answer  # never a server error


@pytest.mark.timeout(120)
def test_random_requests_never_break_the_server() -> None:
    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    stack = contextlib.AsyncExitStack()

    async def setup() -> tuple[WebhookSource, Driver]:
        tg = await stack.enter_async_context(FakeTelegram())
        src = await stack.enter_async_context(
            serving(
                tg, secret=SECRET, max_body=MAX_BODY, header_timeout=TIMEOUT, body_timeout=TIMEOUT
            )
        )
        return src, await stack.enter_async_context(Driver(src))

    src, drv = loop.run_until_complete(setup())

    @settings(
        max_examples=5000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.one_of(shaped, shaped, shaped, garbage))
    def check(case: Shaped | bytes) -> None:
        if isinstance(case, Shaped):
            loop.run_until_complete(one_shaped(src, case))
        else:
            loop.run_until_complete(one_garbage(src, case))

    try:
        check()
        answer = loop.run_until_complete(exchange(src.port, request(update(10**6))))
        assert answer.status == 200
        assert drv.ids[-1] == 10**6
        for u in drv.updates:
            assert type(u) is dict and type(u["update_id"]) is int and u["update_id"] >= 0
        assert len(drv.ids) == len(set(drv.ids))  # a resend after the 200 is not handed on
        assert 500 not in src.responses
        assert src.pending == 0
        assert not errors, errors
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
