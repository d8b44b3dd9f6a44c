"""Both transports over TLS, as Telegram is HTTPS only: FakeTelegram serves a certificate from
a throw-away CA (trustme), and the Bot trusts that CA through ``ssl_context``."""

from __future__ import annotations

import pytest
import uvloop
from loopback import client_for, describe, make_tls, serving

from tgrunner import errors
from tgrunner.client.bot import Bot, InputFile
from tgrunner.client.transports.fast import TransportError
from tgrunner.testing import FakeTelegram

TRANSPORTS = ["fast", "aiohttp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bot_over_tls(transport: str) -> None:
    tls = make_tls()
    async with FakeTelegram(ssl=tls.server) as tg:
        assert tg.api_url.startswith("https://")
        alice = tg.user("Alice")
        async with Bot(
            tg.token, api_url=tg.api_url, transport=transport, ssl_context=tls.client
        ) as bot:
            assert (await bot.get_me())["id"] == bot.id
            for i in range(3):
                assert (await bot.send_message(alice.chat.id, f"hi {i}"))["text"] == f"hi {i}"
            photo = await bot.send_photo(alice.chat.id, InputFile(b"\xff" * 5000, "a.jpg"))
            assert photo["photo"]
        assert [m["text"] for m in tg.replies(alice)[:3]] == ["hi 0", "hi 1", "hi 2"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_untrusted_certificate_is_refused(transport: str) -> None:
    tls = make_tls()
    async with (
        FakeTelegram(ssl=tls.server) as tg,
        Bot(tg.token, api_url=tg.api_url, transport=transport) as bot,
    ):
        with pytest.raises(errors.NetworkError, match=r"(?i)certificate verify failed"):
            await bot.get_me()
        assert tg.calls("getMe") == []


async def test_fast_keeps_one_tls_connection() -> None:
    tls = make_tls()
    async with (
        serving(describe, ssl=tls.server) as server,
        client_for(server.url, ssl_context=tls.client) as client,
    ):
        for _ in range(3):
            assert (await client.request("POST", "/s", b"!")).body.endswith(b"!")
        assert server.connections == client.connections == 1


async def test_fast_without_the_ca_fails_the_handshake() -> None:
    tls = make_tls()
    async with serving(describe, ssl=tls.server) as server, client_for(server.url) as client:
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await client.request("GET", "/")
        assert caught.value.sent is False


def test_fast_over_tls_under_uvloop() -> None:
    uvloop.run(test_fast_keeps_one_tls_connection())
