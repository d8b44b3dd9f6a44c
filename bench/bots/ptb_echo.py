"""The python-telegram-bot 22 echo bot, unchanged between its two runners.

- On tgrunner: ``tgrunner run bench.bots.ptb_echo:application``.
- On PTB's own runner: ``python -m bench.bots.ptb_echo concurrent|sequential`` runs
  ``application.run_polling()``, with ``concurrent_updates(True)`` or without.

The concurrent mode also raises the connection pool to the 256 handlers PTB then runs at once,
as PTB's documentation advises: with its default pool of one connection, concurrent handlers
would queue for it and time out (``pool_timeout``) under API latency.

The server comes from ``BENCH_API_URL`` (default Telegram's) and the token from ``BOT_TOKEN``.
"""

from __future__ import annotations

import os
import sys

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

API_URL = os.environ.get("BENCH_API_URL", "https://api.telegram.org")
POOL = 256  # PTB runs 256 handlers at once with concurrent_updates(True)


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text:
        await message.reply_text(message.text, do_quote=True)


def build(concurrent: bool = False) -> Application:  # type: ignore[type-arg]
    builder = (
        ApplicationBuilder()
        .token(os.environ["BOT_TOKEN"])
        .base_url(f"{API_URL}/bot")
        .base_file_url(f"{API_URL}/file/bot")
    )
    if concurrent:
        builder = builder.concurrent_updates(True).connection_pool_size(POOL)
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    return app


application = build()


def main(mode: str) -> None:
    if mode not in ("concurrent", "sequential"):
        raise SystemExit(f"usage: python -m bench.bots.ptb_echo concurrent|sequential, {mode!r}?")
    app = application if mode == "sequential" else build(concurrent=True)
    app.run_polling(allowed_updates=["message"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sequential")
