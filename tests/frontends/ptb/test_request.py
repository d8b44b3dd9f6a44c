"""Both request modes run the bot, a customised ``HTTPXRequest`` is kept, and
``TgrunnerRequest`` raises PTB's own exceptions."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from telegram import Bot
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import ApplicationBuilder
from telegram.request import HTTPXRequest

from frontends.ptb import ptb_sample
from frontends.ptb.helpers import (
    PHOTO,
    on_tgrunner,
)
from tgrunner.frontends.ptb.request import TgrunnerRequest
from tgrunner.testing import FakeTelegram
from tgrunner.testing.fake.faults import Faults, FloodLimits

# -- the request class ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["tgrunner", "ptb"])
@pytest.mark.timeout(30)
async def test_both_request_modes_run_the_bot(tg: FakeTelegram, mode: str) -> None:
    app = ptb_sample.build(tg.token, api_url=tg.api_url)
    alice = tg.user("Alice")
    alice.send("hello")
    async with on_tgrunner(app, request=mode):
        await tg.wait_for_replies(alice, 1)
        expected = TgrunnerRequest if mode == "tgrunner" else HTTPXRequest
        assert type(app.bot.request) is expected
        await app.bot.send_message(alice.chat.id, "direct")
    assert [m["text"] for m in tg.replies(alice)] == ["hello", "direct"]


@pytest.mark.timeout(30)
async def test_a_customised_httpx_request_is_kept(tg: FakeTelegram) -> None:
    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.api_url}/bot")
        .socket_options([(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        .build()
    )
    alice = tg.user("Alice")
    async with on_tgrunner(app):
        await app.bot.send_message(alice.chat.id, "kept")
        assert type(app.bot.request) is HTTPXRequest
    assert [m["text"] for m in tg.replies(alice)] == ["kept"]


@pytest.mark.timeout(30)
async def test_tgrunner_request_raises_ptb_exceptions(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = tg.user("Alice")
    bot = Bot(
        tg.token,
        base_url=f"{tg.api_url}/bot",
        base_file_url=f"{tg.api_url}/file/bot",
        # A call may take the sum of its timeouts.
        request=TgrunnerRequest(
            read_timeout=0.2, write_timeout=0.1, connect_timeout=0.1, pool_timeout=0.1
        ),
        get_updates_request=TgrunnerRequest(),
    )
    async with bot:
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(alice.chat.id, "")
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(987654321, "hi")

        tg.flood = FloodLimits(per_chat_per_second=0.01, private_burst=1)
        await bot.send_message(alice.chat.id, "first")
        # PTB warns about its retry_after type unless asked for the coming one.
        monkeypatch.setenv("PTB_TIMEDELTA", "1")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(alice.chat.id, "second")
        assert isinstance(info.value.retry_after, timedelta)
        assert info.value.retry_after.total_seconds() > 0
        tg.flood = None

        tg.faults = Faults(latency=1.0, methods=frozenset({"sendMessage"}))
        with pytest.raises(TimedOut):
            await bot.send_message(alice.chat.id, "too slow")
        tg.faults = None

        # An upload goes as multipart; the download comes back byte for byte.
        sent = await bot.send_photo(alice.chat.id, PHOTO, caption="a photo")
        file = await bot.get_file(sent.photo[-1].file_id)
        assert bytes(await file.download_as_bytearray()) == PHOTO
        assert tg.calls("sendPhoto")[-1].params["caption"] == "a photo"

    wrong = Bot("123:not-the-token", base_url=f"{tg.api_url}/bot", request=TgrunnerRequest())
    with pytest.raises(InvalidToken):
        await wrong.initialize()
    await wrong.shutdown()

    nowhere = Bot(tg.token, base_url="http://127.0.0.1:9/bot", request=TgrunnerRequest())
    with pytest.raises(NetworkError):
        await nowhere.get_me()
    await nowhere.shutdown()
