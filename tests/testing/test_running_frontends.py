"""``running()`` with each front-end, in both forms: an aiogram Dispatcher (with its Bot, and
with aiogram's own session) and a PTB Application (with tgrunner's and PTB's own requests) answer
in the block; the stop at the end of a sync block does not wait out the default 30 s long
poll."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.types import Message
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from tgrunner import Context, Router
from tgrunner.testing import FakeTelegram, running

AnyApp = Application[Any, Any, Any, Any, Any, Any]

router = Router()


@router.message()
async def native_echo(ctx: Context) -> None:
    await ctx.reply(f"native: {ctx.text}")


def aiogram_bot(token: str) -> tuple[Dispatcher, AiogramBot]:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"aiogram: {message.text}")

    return dp, AiogramBot(token)


async def ptb_echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"ptb: {update.effective_message.text}")


def ptb_bot(token: str) -> AnyApp:
    app = ApplicationBuilder().token(token).build()
    app.add_handler(MessageHandler(filters.TEXT, ptb_echo))
    return app


# (name, a function of the token giving the target, front-end options, the reply's prefix)
BOTS = {
    "native": (lambda token: router, {}, "native"),
    "aiogram": (aiogram_bot, {}, "aiogram"),
    "aiogram-own-session": (aiogram_bot, {"session": "aiogram"}, "aiogram"),
    "ptb": (ptb_bot, {}, "ptb"),
    "ptb-own-request": (ptb_bot, {"request": "ptb"}, "ptb"),
}


@pytest.mark.parametrize("kind", BOTS)
async def test_the_async_form_runs_each_front_end(tg: FakeTelegram, kind: str) -> None:
    make, options, prefix = BOTS[kind]
    alice = tg.user("Alice")
    async with running(make(tg.token), tg, **options) as runner:
        alice.send("hi")
        [reply] = await tg.wait_for_replies(alice, 1, timeout=10)
    assert reply["text"] == f"{prefix}: hi"
    assert runner.stats.finished == 1


@pytest.mark.parametrize("kind", BOTS)
def test_the_sync_form_runs_each_front_end_and_stops_at_once(kind: str) -> None:
    make, options, prefix = BOTS[kind]
    with FakeTelegram().in_thread() as tg:
        alice = tg.user("Alice")
        with running(make(tg.token), tg, **options) as runner:
            assert runner.settings.polling.timeout == 30
            alice.send("hi")
            [reply] = tg.wait_for_replies_sync(alice, 1, timeout=10)
            tg.wait_until_polling_sync()  # the next 30 s long poll is waiting
            left_at = time.monotonic()
        exited_in = time.monotonic() - left_at
    assert reply["text"] == f"{prefix}: hi"
    assert exited_in < 5, f"the exit of a {kind} bot took {exited_in:.1f} s"


async def test_a_start_up_hook_that_raises_fails_the_enter(tg: FakeTelegram) -> None:
    dp, bot = aiogram_bot(tg.token)

    @dp.startup()
    async def broken() -> None:
        raise LookupError("no database")

    with pytest.raises(LookupError, match="no database"):
        async with running((dp, bot), tg):
            pytest.fail("the block ran although the start-up failed")
