"""A python-telegram-bot echo bot for the PTB front-end's order, stop and crash tests.

``tgrunner run ptb_sample:application --api-url URL --token TOKEN`` runs it: the module's own
token and server are placeholders that the command line replaces. ``PTB_SAMPLE_PERSISTENCE``
names a pickle file: each chat's count of handled messages is kept there.

Each handler waits a little, longer for some updates than others, so replies come back in
order only if the runtime keeps the order. :data:`load` records how many ran at once.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    PicklePersistence,
    filters,
)

PLACEHOLDER_TOKEN = "1:placeholder"


@dataclass
class Load:
    running: int = 0
    peak: int = 0


load = Load()


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    load.running += 1
    load.peak = max(load.peak, load.running)
    try:
        await asyncio.sleep((update.update_id % 4) * 0.002)
        context.chat_data["handled"] = context.chat_data.get("handled", 0) + 1
        await update.effective_message.reply_text(update.effective_message.text)
    finally:
        load.running -= 1


async def slow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/slow``: answers at once, then takes 30 s (for the stop tests)."""
    await update.effective_message.reply_text("started")
    await asyncio.sleep(30)
    await update.effective_message.reply_text("finished")


def build(
    token: str = PLACEHOLDER_TOKEN,
    *,
    api_url: str = "https://api.telegram.org",
    persistence_path: str | None = None,
    block: bool = True,
) -> Application:  # type: ignore[type-arg]
    builder = ApplicationBuilder().token(token).base_url(f"{api_url}/bot")
    builder = builder.base_file_url(f"{api_url}/file/bot")
    if persistence_path:
        builder = builder.persistence(PicklePersistence(persistence_path))
    app = builder.build()
    app.add_handler(CommandHandler("slow", slow))
    app.add_handler(MessageHandler(filters.TEXT, echo, block=block))
    return app


application = build(persistence_path=os.environ.get("PTB_SAMPLE_PERSISTENCE"))
