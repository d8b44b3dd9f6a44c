"""aiogram and PTB bots, their code unchanged, get tgrunner's flood control through tgrunner's
session and request: five messages into one chat under Telegram's per-chat limit all arrive,
in order; over a bound, each framework raises its own retry-after error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import Message
from telegram import Bot as PTBBot
from telegram import Update
from telegram.error import RetryAfter as PTBRetryAfter
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from tgrunner.flood.limiter import FloodControl
from tgrunner.flood.options import FloodOptions
from tgrunner.frontends.aiogram.session import TgrunnerSession
from tgrunner.frontends.ptb.request import TgrunnerRequest
from tgrunner.testing import FakeTelegram, FloodLimits, running

PARTS = [f"part {n}" for n in range(1, 6)]


def texts(tg: FakeTelegram, chat: object) -> list[str]:
    return [m["text"] for m in tg.replies(chat)]


def aiogram_bot(tg: FakeTelegram) -> tuple[Dispatcher, AiogramBot]:
    dp = Dispatcher()

    @dp.message()
    async def five(message: Message) -> None:
        for text in PARTS:
            await message.answer(text)

    return dp, AiogramBot(tg.token)


def ptb_app(tg: FakeTelegram) -> Any:
    async def five(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        for text in PARTS:
            await context.bot.send_message(update.effective_chat.id, text)

    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    app.add_handler(MessageHandler(filters.TEXT, five))
    return app


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
@pytest.mark.timeout(20)
async def test_five_messages_arrive_in_order_under_the_per_chat_limit(
    tg: FakeTelegram, framework: str
) -> None:
    tg.flood = FloodLimits(per_chat_per_second=1)
    alice = tg.user("Alice")
    target = aiogram_bot(tg) if framework == "aiogram" else ptb_app(tg)
    async with running(target, tg) as runner:
        alice.send("go")
        await tg.wait_for_replies(alice, 5, timeout=15)
    assert texts(tg, alice) == PARTS
    assert runner.stats.errors == 0
    assert any(r.status == 429 for r in tg.calls("sendMessage")), "the limit was never hit"


@pytest.mark.timeout(15)
async def test_aiogram_gets_its_own_retry_after_over_a_bound(tg: FakeTelegram) -> None:
    tg.flood = FloodLimits(per_chat_per_second=0.2, private_burst=1)  # retry after 5 s
    alice = tg.user("Alice")
    flood = FloodControl(FloodOptions(max_wait=1))
    session = TgrunnerSession(TelegramAPIServer.from_base(tg.api_url), flood=flood)
    async with AiogramBot(tg.token, session=session) as bot:
        await bot.send_message(alice.chat.id, "one")
        with pytest.raises(TelegramRetryAfter) as refused:
            await bot.send_message(alice.chat.id, "two")
    assert refused.value.retry_after >= 5
    assert "max_wait" in refused.value.message
    assert flood.stats.limited == 1
    assert texts(tg, alice) == ["one"]


@pytest.mark.timeout(15)
async def test_ptb_gets_its_own_retry_after_over_a_bound(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # PTB's coming retry_after type, without a warning
    tg.flood = FloodLimits(per_chat_per_second=0.2, private_burst=1)
    alice = tg.user("Alice")
    flood = FloodControl(FloodOptions(max_wait=1))
    bot = PTBBot(tg.token, base_url=f"{tg.api_url}/bot", request=TgrunnerRequest(flood=flood))
    async with bot:
        await bot.send_message(alice.chat.id, "one")
        with pytest.raises(PTBRetryAfter) as refused:
            await bot.send_message(alice.chat.id, "two")
    assert refused.value.retry_after >= timedelta(seconds=5)
    assert flood.stats.limited == 1
    assert texts(tg, alice) == ["one"]
