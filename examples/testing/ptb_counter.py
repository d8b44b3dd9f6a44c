"""A python-telegram-bot 22 bot that counts each user's messages in ``user_data``."""

import os

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def count(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.user_data is not None and update.effective_message is not None
    context.user_data["count"] = context.user_data.get("count", 0) + 1
    await update.effective_message.reply_text(f"Message number {context.user_data['count']}")


def build(token: str) -> Application:  # type: ignore[type-arg]
    application = Application.builder().token(token).build()
    application.add_handler(MessageHandler(filters.TEXT, count))
    return application


if __name__ == "__main__":
    build(os.environ["BOT_TOKEN"]).run_polling()
