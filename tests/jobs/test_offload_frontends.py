"""``offload()`` from a native, an aiogram and a PTB handler, each run in-process by the
runtime against FakeTelegram: the reply carries what the pool process computed, and once the
bot stopped its pool is shut down (the inline executor's close) and its processes are gone."""

from __future__ import annotations

from typing import Any

import offload_work as work
import pytest
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.types import Message
from offload_support import alive
from telegram import Update
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from tgrunner import Context, Router
from tgrunner.jobs import offload, offload_pids
from tgrunner.testing import FakeTelegram, running

pytestmark = [pytest.mark.usefixtures("offload_pool"), pytest.mark.timeout(60)]

seen: set[int] = set()  # the pool processes the handlers saw


async def squared(text: str | None) -> str:
    seen.update(offload_pids())
    return str(await offload(work.square, int(text or "0")))


def native_bot(token: str) -> Router:
    router = Router()

    @router.message()
    async def handle(ctx: Context) -> None:
        await ctx.reply(await squared(ctx.text))

    return router


def aiogram_bot(token: str) -> tuple[Dispatcher, AiogramBot]:
    dp = Dispatcher()

    @dp.message()
    async def handle(message: Message) -> None:
        await message.answer(await squared(message.text))

    return dp, AiogramBot(token)


async def ptb_handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(await squared(update.effective_message.text))


def ptb_bot(token: str) -> Any:
    app = ApplicationBuilder().token(token).build()
    app.add_handler(MessageHandler(filters.TEXT, ptb_handle))
    return app


BOTS = {"native": native_bot, "aiogram": aiogram_bot, "ptb": ptb_bot}


@pytest.mark.parametrize("kind", BOTS)
async def test_a_handler_of_each_front_end_offloads(tg: FakeTelegram, kind: str) -> None:
    seen.clear()
    users = [tg.user(f"User{i}") for i in range(4)]
    async with running(BOTS[kind](tg.token), tg):
        for i, user in enumerate(users):
            for n in range(3):
                user.send(str(10 * i + n))
        for i, user in enumerate(users):
            replies = await tg.wait_for_replies(user, 3, timeout=30)
            assert [r["text"] for r in replies] == [str((10 * i + n) ** 2) for n in range(3)]
    assert seen and offload_pids() == []  # the runner's stop shut the pool down
    assert [pid for pid in seen if alive(pid)] == []
