"""The flood benchmark's python-telegram-bot echo bot, with PTB's ``AIORateLimiter``, on PTB's
own runner: ``python -m bench.bots.ptb_flood 3`` (three messages per message, as
``bench.bots.flood_echo:echo3``) or ``python -m bench.bots.ptb_flood 1`` (the text alone).

- ``concurrent_updates(True)`` (256 handlers at once) and a connection pool of that size, as in
  ``bench.bots.ptb_echo``: how PTB is scaled past one update at a time. PTB then keeps no
  per-chat order; the benchmark counts what that costs.
- ``AIORateLimiter(max_retries=3)``: PTB's defaults otherwise (30 sends/s overall, 20/min per
  group, no per-private-chat limit). PTB's own default is ``max_retries=0``, under which a 429
  goes straight to the handler and its message is lost; with retries, a 429 holds every request
  of the bot for ``retry_after`` + 0.1 s.

Requires ``aiolimiter`` (``python-telegram-bot[rate-limiter]``). The server comes from
``BENCH_API_URL`` and the token from ``BOT_TOKEN``.
"""

from __future__ import annotations

import os
import sys

from telegram import Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ContextTypes,
    MessageHandler,
    filters,
)

API_URL = os.environ.get("BENCH_API_URL", "https://api.telegram.org")
POOL = 256  # PTB runs 256 handlers at once with concurrent_updates(True)
MAX_RETRIES = 3


def build(replies: int) -> Application:  # type: ignore[type-arg]
    """The bot: every text message answered with ``replies`` messages into its chat."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        if replies == 1:
            await context.bot.send_message(message.chat_id, message.text)
            return
        for k in range(1, replies + 1):
            await context.bot.send_message(message.chat_id, f"{message.text}/{k}")

    app = (
        ApplicationBuilder()
        .token(os.environ["BOT_TOKEN"])
        .base_url(f"{API_URL}/bot")
        .base_file_url(f"{API_URL}/file/bot")
        .concurrent_updates(True)
        .connection_pool_size(POOL)
        .rate_limiter(AIORateLimiter(max_retries=MAX_RETRIES))
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    return app


def main(argv: list[str]) -> None:
    if argv not in (["1"], ["3"]):
        raise SystemExit(f"usage: python -m bench.bots.ptb_flood 1|3, not {argv!r}")
    build(int(argv[0])).run_polling(allowed_updates=["message"])


if __name__ == "__main__":
    main(sys.argv[1:])
