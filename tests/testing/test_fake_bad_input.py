"""Bad input gets Telegram's error (or a closed connection), and the server serves on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tgrunner.testing import FakeTelegram

ALICE = {"id": 1001, "type": "private", "first_name": "Alice"}


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(max_body=64 * 1024) as fake:
        fake.state.register_chat(ALICE)
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def url(tg: FakeTelegram, method: str) -> str:
    return f"{tg.api_url}/bot{tg.token}/{method}"


async def post(
    session: aiohttp.ClientSession, target: str, data: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    async with session.post(target, data=data, headers={"Content-Type": content_type}) as r:
        return r.status, await r.json(content_type=None)


async def still_serves(tg: FakeTelegram) -> None:
    """A fresh connection gets a normal answer."""
    async with aiohttp.ClientSession() as fresh, fresh.get(url(tg, "getMe")) as r:
        assert r.status == 200
        assert (await r.json())["result"]["id"] == tg.bot_user["id"]
    status, body = await post_send(tg)
    assert status == 200, body


async def post_send(tg: FakeTelegram) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as fresh,
        fresh.post(
            url(tg, "sendMessage"), json={"chat_id": ALICE["id"], "text": "still here"}
        ) as r,
    ):
        return r.status, await r.json()


async def test_malformed_json(tg: FakeTelegram, session: aiohttp.ClientSession) -> None:
    status, body = await post(
        session, url(tg, "sendMessage"), b'{"chat_id": 1, "te', "application/json"
    )
    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: can't parse JSON object",
    }
    status, body = await post(session, url(tg, "sendMessage"), b"[1, 2]", "application/json")
    assert (status, body["description"]) == (400, "Bad Request: JSON object expected")
    await still_serves(tg)


async def test_wrong_content_type_body_is_ignored(
    tg: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    # Like the reference server, an unknown content type contributes no parameters ...
    body = b'{"chat_id": 1001, "text": "hi"}'
    status, answer = await post(session, url(tg, "sendMessage"), body, "text/plain")
    assert status == 400
    assert answer["ok"] is False
    assert answer["description"].startswith("Bad Request")
    assert tg.replies(ALICE) == []
    # ... so a method without required parameters still works.
    status, answer = await post(session, url(tg, "getMe"), b"whatever", "application/xml")
    assert status == 200
    assert answer["result"] == tg.bot_user
    await still_serves(tg)


async def test_oversized_body(tg: FakeTelegram, session: aiohttp.ClientSession) -> None:
    big = b'{"chat_id": 1001, "text": "' + b"x" * (128 * 1024) + b'"}'
    try:
        status, _ = await post(session, url(tg, "sendMessage"), big, "application/json")
    except aiohttp.ClientError:
        pass  # the server may close the connection instead, as Telegram's does
    else:
        assert status == 413
    assert tg.replies(ALICE) == []
    await still_serves(tg)


async def test_truncated_multipart_body(tg: FakeTelegram, session: aiohttp.ClientSession) -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="chat_id"\r\n\r\n'
        b"1001\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="photo"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
        b"\xff\xd8\xff partial jpeg"
    )
    status, answer = await post(
        session, url(tg, "sendPhoto"), body, "multipart/form-data; boundary=XyZ"
    )
    assert status == 400
    assert answer["description"].startswith("Bad Request")
    status, answer = await post(session, url(tg, "sendPhoto"), body, "multipart/form-data")
    assert (status, answer["description"]) == (400, "Bad Request: boundary not found")
    await still_serves(tg)


async def test_body_cut_short_on_the_wire(tg: FakeTelegram) -> None:
    """A client that promises more bytes than it sends and hangs up must not hurt the server."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", tg.port)
    writer.write(
        f"POST /bot{tg.token}/sendMessage HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"chat_id": 10'
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await still_serves(tg)


async def test_garbage_instead_of_http(tg: FakeTelegram) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tg.port)
    writer.write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
    await writer.drain()
    # The server answers 400 or closes; either way the read ends.
    await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    await still_serves(tg)


async def test_wrong_token(tg: FakeTelegram, session: aiohttp.ClientSession) -> None:
    for token in ("123:wrong", "nonsense", tg.token + "x"):
        async with session.get(f"{tg.api_url}/bot{token}/getMe") as r:
            assert r.status == 401
            assert await r.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
    await still_serves(tg)


async def test_unknown_method_and_path(tg: FakeTelegram, session: aiohttp.ClientSession) -> None:
    for target in (url(tg, "sendTelepathy"), url(tg, "getMe/"), f"{tg.api_url}/favicon.ico"):
        async with session.post(target, json={}) as r:
            assert r.status == 404
            assert await r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    await still_serves(tg)


@pytest.mark.parametrize(
    "params",
    [
        {"chat_id": 1001},  # text missing
        {"text": "hi"},  # chat_id missing
        {"chat_id": 1001, "text": "hi", "reply_markup": "{not json"},
        {"chat_id": 1001, "text": "hi", "reply_parameters": "[]"},
        {"chat_id": 1001, "text": "hi", "entities": "3"},
    ],
)
async def test_missing_or_ill_typed_parameter(
    tg: FakeTelegram, session: aiohttp.ClientSession, params: dict[str, Any]
) -> None:
    form = {k: str(v) for k, v in params.items()}
    async with session.post(url(tg, "sendMessage"), data=form) as r:
        body = await r.json()
        assert r.status == 400, body
        assert body["ok"] is False
        assert body["error_code"] == 400
        assert body["description"].startswith("Bad Request: ")
    assert tg.replies(ALICE) == []
    await still_serves(tg)
