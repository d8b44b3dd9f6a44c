"""The aiogram 3 echo bot of :mod:`bench.bots.aiogram_echo`, served by aiogram's own webhook
handler: ``python -m bench.bots.aiogram_webhook``.

aiogram's documented webhook set-up: a ``SimpleRequestHandler`` (default mode,
``handle_in_background=True``: it answers 200 at once and handles the update in a task) and
``setup_application`` on an aiohttp ``web.Application``; the bot calls ``setWebhook`` itself
at start-up, with ``max_connections=100``. The server comes from ``BENCH_API_URL``, the token
from ``BOT_TOKEN``, the port to listen on (127.0.0.1) from ``BENCH_WEBHOOK_PORT``.
"""

from __future__ import annotations

import os

from aiogram import Bot
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bench.bots.aiogram_echo import bot, dp

PATH = "/tg/hook"
MAX_CONNECTIONS = 100


def _url() -> str:
    return f"http://127.0.0.1:{os.environ['BENCH_WEBHOOK_PORT']}{PATH}"


async def on_startup(bot: Bot) -> None:
    await bot.set_webhook(_url(), max_connections=MAX_CONNECTIONS)


def main() -> None:
    dp.startup.register(on_startup)
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot).register(app, path=PATH)
    setup_application(app, dp, bot=bot)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["BENCH_WEBHOOK_PORT"]), print=None)


if __name__ == "__main__":
    main()
