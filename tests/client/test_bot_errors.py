"""The native Bot API client's errors: each Telegram error mapped to its class with the
method, the code and ``retry_after``; network failures, timeouts and answers that are not the
Bot API's envelope as NetworkError (or ServerError), always naming the method."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from loopback import serving

from tgrunner import errors
from tgrunner._http.server import Response
from tgrunner.client.bot import Bot
from tgrunner.testing import FakeTelegram, Faults, FloodLimits


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        yield client


async def test_errors_map_to_classes(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(errors.BadRequest, match="chat not found") as bad:
        await bot.send_message(424242, "x")
    assert (bad.value.method, bad.value.error_code) == ("sendMessage", 400)
    with pytest.raises(errors.NotFound):
        await bot.call("noSuchMethod")
    bot_id = tg.token.partition(":")[0]
    async with Bot(f"{bot_id}:AAwrongwrongwrongwrongwrongwrongwro", api_url=tg.api_url) as wrong:
        with pytest.raises(errors.Unauthorized):
            await wrong.get_me()


async def test_flood_limit_is_retry_after(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    tg.flood = FloodLimits(per_chat_per_second=1, private_burst=1)
    await bot.send_message(alice.chat.id, "one")
    with pytest.raises(errors.RetryAfter) as flood:
        await bot.send_message(alice.chat.id, "two")
    assert flood.value.error_code == 429
    assert flood.value.retry_after is not None and flood.value.retry_after >= 1


async def test_server_errors_and_resets(tg: FakeTelegram, bot: Bot) -> None:
    tg.faults = Faults(error_rate=1.0)
    with pytest.raises(errors.ServerError):
        await bot.get_me()
    tg.faults = Faults(reset_rate=1.0)
    with pytest.raises(errors.NetworkError, match="getMe"):
        await bot.call("getMe")
    tg.faults = None
    assert (await bot.call("getMe"))["id"] == bot.id


async def test_timeout_is_timed_out(tg: FakeTelegram) -> None:
    tg.faults = Faults(latency=2.0)
    async with Bot(tg.token, api_url=tg.api_url, timeout=0.2) as slow:
        with pytest.raises(errors.TimedOut):
            await slow.call("getMe")


async def test_unreachable_server_is_network_error() -> None:
    async with Bot("1:AAtest", api_url="http://127.0.0.1:9") as bot:
        with pytest.raises(errors.NetworkError, match="cannot reach"):
            await bot.get_me()


@pytest.mark.parametrize("token", ["", "abc", "123", "123:", "12 3:abc", "1:a/b"])
def test_malformed_token_is_a_config_error(token: str) -> None:
    with pytest.raises(errors.ConfigError, match="format"):
        Bot(token)


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"1", b"null", b'[{"ok": true}]'])
async def test_an_answer_that_is_not_an_object_is_a_network_error(body: bytes) -> None:
    async with (
        serving(lambda r: Response(200, body)) as server,
        Bot("1:AAtest", api_url=server.url) as bot,
    ):
        with pytest.raises(errors.NetworkError, match=r"getChat: .*200 with JSON that is not"):
            await bot.call("getChat", chat_id=1)


async def test_a_5xx_that_is_not_an_object_is_a_server_error() -> None:
    async with (
        serving(lambda r: Response(502, b'"bad gateway"')) as server,
        Bot("1:AAtest", api_url=server.url) as bot,
    ):
        with pytest.raises(errors.ServerError, match="sendMessage") as caught:
            await bot.send_message(1, "x")
        assert caught.value.error_code == 502


async def test_a_body_that_is_not_json_is_a_network_error() -> None:
    async with (
        serving(lambda r: Response(200, b"<html>captive portal</html>")) as server,
        Bot("1:AAtest", api_url=server.url) as bot,
    ):
        with pytest.raises(errors.NetworkError, match=r"getMe: .*not JSON"):
            await bot.get_me()
