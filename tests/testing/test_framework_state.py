"""``running()`` empties the in-memory state of the framework before each run of the same bot
object (aiogram's MemoryStorage; PTB's user, chat and bot data, conversations and callback data
cache), unless ``reset_state=False``; a persistence is left alone. A module-level bot object
runs again on a new event loop, as each test of pytest-asyncio has its own.

Each run here is a sync ``with running(...)``: its own thread, so its own event loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)

from tgrunner.testing import FakeTelegram, running

AnyApp = Application[Any, Any, Any, Any, Any, Any]

# -- aiogram: a Dispatcher with a form, as a module would hold it ------------------------------


class Form(StatesGroup):
    name = State()


def form_dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message(Command("form"))
    async def form(message: Message, state: FSMContext) -> None:
        await state.set_state(Form.name)
        await message.answer("Your name?")

    @dp.message(Form.name)
    async def name(message: Message, state: FSMContext) -> None:
        await state.clear()
        await message.answer(f"Hello, {message.text}!")

    @dp.message()
    async def other(message: Message) -> None:
        await message.answer("No form open.")

    return dp


def say(target: Any, text: str, **options: Any) -> str:
    """One run of ``target`` against a new FakeTelegram: Alice says ``text``; the reply."""
    with FakeTelegram().in_thread() as tg:
        alice = tg.user("Alice")
        bot = (target, AiogramBot(tg.token)) if isinstance(target, Dispatcher) else target
        with running(bot, tg, **options):
            alice.send(text)
            [reply] = tg.wait_for_replies_sync(alice, 1, timeout=10)
    return str(reply["text"])


def test_aiogram_fsm_state_is_reset_before_each_run() -> None:
    dp = form_dispatcher()
    assert say(dp, "/form") == "Your name?"
    assert say(dp, "Alice") == "No form open."  # the open form of the last run is gone


def test_aiogram_fsm_state_is_kept_with_reset_state_false() -> None:
    dp = form_dispatcher()
    assert say(dp, "/form") == "Your name?"
    assert say(dp, "Alice", reset_state=False) == "Hello, Alice!"


# -- PTB: user, chat and bot data, a conversation, callback data --------------------------------


async def count(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.user_data is not None
    assert context.chat_data is not None
    context.user_data["n"] = context.user_data.get("n", 0) + 1
    context.chat_data["n"] = context.chat_data.get("n", 0) + 1
    context.bot_data["n"] = context.bot_data.get("n", 0) + 1
    ns = (context.user_data["n"], context.chat_data["n"], context.bot_data["n"])
    assert update.effective_message is not None
    await update.effective_message.reply_text("n={},{},{}".format(*ns))


async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message is not None
    await update.effective_message.reply_text("Your name?")
    return 1


async def greet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"Hello, {update.effective_message.text}!")
    return ConversationHandler.END


async def other(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text("No conversation.")


async def keyboard(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    button = InlineKeyboardButton("go", callback_data=("any", "object"))
    await update.effective_message.reply_text("Pick", reply_markup=InlineKeyboardMarkup([[button]]))


def ptb_application(persistence: Path | None = None, callback_data: bool = False) -> AnyApp:
    builder = ApplicationBuilder().token("1:placeholder").arbitrary_callback_data(callback_data)
    if persistence is not None:
        builder = builder.persistence(PicklePersistence(persistence))
    app = builder.build()
    app.add_handler(CommandHandler("count", count))
    app.add_handler(CommandHandler("keyboard", keyboard))
    talk = ConversationHandler(
        entry_points=[CommandHandler("talk", ask)],
        states={1: [MessageHandler(filters.TEXT & ~filters.COMMAND, greet)]},
        fallbacks=[],
    )
    app.add_handler(talk)
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, other))
    return app


def cached_callback_data(app: AnyApp) -> int:
    cache = app.bot.callback_data_cache  # type: ignore[attr-defined]
    return len(cache.persistence_data[0])


@pytest.fixture
def no_loop_errors(caplog: pytest.LogCaptureFixture) -> Any:
    """No log line of PTB's about an asyncio object bound to an earlier run's loop."""
    caplog.set_level(logging.WARNING)
    yield
    records = caplog.get_records("call")
    bound = [r.getMessage() for r in records if "different event loop" in r.getMessage()]
    assert bound == []


@pytest.mark.usefixtures("no_loop_errors")
def test_ptb_data_and_conversations_are_reset_before_each_run() -> None:
    app = ptb_application()
    assert say(app, "/count") == "n=1,1,1"
    assert say(app, "/talk") == "Your name?"
    assert say(app, "/count") == "n=1,1,1"
    assert say(app, "Alice") == "No conversation."


def test_ptb_callback_data_cache_is_reset_before_each_run() -> None:
    pytest.importorskip("cachetools", reason="PTB's arbitrary callback data needs cachetools")
    app = ptb_application(callback_data=True)
    assert say(app, "/keyboard") == "Pick"
    assert cached_callback_data(app) == 1
    assert say(app, "/count") == "n=1,1,1"
    assert cached_callback_data(app) == 0


@pytest.mark.usefixtures("no_loop_errors")
def test_ptb_state_is_kept_with_reset_state_false() -> None:
    app = ptb_application()
    assert say(app, "/count") == "n=1,1,1"
    assert say(app, "/count", reset_state=False) == "n=2,2,2"
    assert say(app, "/talk", reset_state=False) == "Your name?"
    assert say(app, "Alice", reset_state=False) == "Hello, Alice!"


@pytest.mark.usefixtures("no_loop_errors")
def test_ptb_data_in_a_persistence_is_left_alone(tmp_path: Path) -> None:
    app = ptb_application(persistence=tmp_path / "bot.pickle")
    assert say(app, "/count") == "n=1,1,1"
    assert say(app, "/count") == "n=2,2,2"  # loaded again from the persistence
