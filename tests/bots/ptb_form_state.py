"""An unchanged python-telegram-bot bot whose 3-step ``ConversationHandler`` and
``user_data`` live in tgrunner's state store (``TgrunnerPersistence``, on the store of
``tgrunner run``): ``/start`` asks the name, then the age, then the city, and the last answer
sums it up with the pid of the process that answered (``done NAME AGE CITY in PID``). The
conversation goes on in any worker process, and after a restart or a crash. Its token and
server are placeholders that the command line replaces."""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import (
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from tgrunner.state.bridges.ptb import TgrunnerPersistence

NAME, AGE, CITY = range(3)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await update.effective_message.reply_text("name?")
    return NAME


async def got_name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data["name"] = update.effective_message.text
    await update.effective_message.reply_text("age?")
    return AGE


async def got_age(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data["age"] = update.effective_message.text
    await update.effective_message.reply_text("city?")
    return CITY


async def got_city(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    data = context.user_data
    text = f"done {data['name']} {data['age']} {update.effective_message.text} in {os.getpid()}"
    await update.effective_message.reply_text(text)
    return ConversationHandler.END


application = (
    ApplicationBuilder()
    .token("1:placeholder")
    .base_url("https://api.telegram.org/bot")
    .persistence(TgrunnerPersistence())
    .build()
)
application.add_handler(
    ConversationHandler(
        entry_points=[CommandHandler("start", start)],
        states={
            NAME: [MessageHandler(filters.TEXT & ~filters.COMMAND, got_name)],
            AGE: [MessageHandler(filters.TEXT & ~filters.COMMAND, got_age)],
            CITY: [MessageHandler(filters.TEXT & ~filters.COMMAND, got_city)],
        },
        fallbacks=[],
        name="form",
        persistent=True,
    )
)
