"""A python-telegram-bot Application whose handler queues ``render`` with the message as its
reply target and answers "⏳ Processing…"; a job worker replies ``done: TEXT``."""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from tgrunner.jobs import task


@task
def render(text: str) -> str:
    return f"done: {text}"


async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await render.enqueue(update.message.text or "", reply_to=update.message)
    await update.message.reply_text("⏳ Processing…")


application = Application.builder().token(os.environ.get("BOT_TOKEN", "1:TOKEN")).build()
application.add_handler(MessageHandler(filters.TEXT, handle))
