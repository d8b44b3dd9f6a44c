"""The CPU-bound aiogram 3 echo bot: each handler spins 1 ms of CPU, then replies.

``tgrunner run bench.bots.aiogram_cpu:dp --workers N``. The server comes from
``BENCH_API_URL`` and the token from ``BOT_TOKEN``, as in :mod:`bench.bots.aiogram_echo`.
"""

from __future__ import annotations

import os

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

from bench.bots.spin import spin

API_URL = os.environ.get("BENCH_API_URL", "https://api.telegram.org")

dp = Dispatcher()
bot = Bot(
    os.environ["BOT_TOKEN"],
    session=AiohttpSession(api=TelegramAPIServer.from_base(API_URL)),
)


@dp.message(F.text)
async def echo(message: Message) -> None:
    spin()
    await message.reply(message.text or "")
