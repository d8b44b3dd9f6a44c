"""python-telegram-bot's examples/echobot.py layout: a sync ``main()`` that builds the
Application and calls ``application.run_polling(allowed_updates=Update.ALL_TYPES)``.

``tgrunner run ptb_echobot:main`` runs it unchanged; ``PTB_ECHOBOT_DROP=1`` makes main pass
``drop_pending_updates=True``. The token is read from ``BOT_TOKEN``; the server is PTB's
default (api.telegram.org), which ``--api-url`` replaces.
"""

from __future__ import annotations

import os

from telegram import ForceReply, Update
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = update.effective_user
    assert update.message is not None and user is not None
    await update.message.reply_html(
        rf"Hi {user.mention_html()}!",
        reply_markup=ForceReply(selective=True),
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text("Help!")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None and update.message.text is not None
    await update.message.reply_text(update.message.text)


def main() -> None:
    application = Application.builder().token(os.environ.get("BOT_TOKEN", "TOKEN")).build()
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CommandHandler("help", help_command))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    if os.environ.get("PTB_ECHOBOT_DROP") == "1":
        application.run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=True)
    else:
        application.run_polling(allowed_updates=Update.ALL_TYPES)


if __name__ == "__main__":
    main()
