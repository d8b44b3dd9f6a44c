"""python-telegram-bot targets that cannot be a bot: the builder, the Bot, a handler; and entry
points tgrunner refuses (a webhook, an Updater started by hand)."""

from __future__ import annotations

import asyncio
import os

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

# The server and token matter only to updater_main, which calls the server before it is refused.
API = os.environ.get("PTB_WRONG_API", "https://api.telegram.org")
builder = ApplicationBuilder().token("1:placeholder")
application = (
    Application.builder()
    .token(os.environ.get("BOT_TOKEN", "1:placeholder"))
    .base_url(f"{API}/bot")
    .build()
)
bot = application.bot


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(update.message.text or "")


application.add_handler(MessageHandler(filters.TEXT, echo))


def webhook_main() -> None:
    application.run_webhook(listen="127.0.0.1", port=8443, webhook_url="https://example.com")


async def updater_main() -> None:
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling()
        await asyncio.Event().wait()
