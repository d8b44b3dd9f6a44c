"""The aiogram 3 echo bot, unchanged between its two runners.

- On tgrunner: ``tgrunner run bench.bots.aiogram_echo:dp`` (the Dispatcher and its Bot).
- On aiogram's own runner: ``python -m bench.bots.aiogram_echo tasks|sequential`` runs
  ``dp.start_polling(bot, handle_as_tasks=True|False)``.

The server comes from ``BENCH_API_URL`` (default Telegram's) and the token from ``BOT_TOKEN``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message

API_URL = os.environ.get("BENCH_API_URL", "https://api.telegram.org")

dp = Dispatcher()
bot = Bot(
    os.environ["BOT_TOKEN"],
    session=AiohttpSession(api=TelegramAPIServer.from_base(API_URL)),
)


@dp.message(F.text)
async def echo(message: Message) -> None:
    await message.reply(message.text or "")


def main(mode: str) -> None:
    if mode not in ("tasks", "sequential"):
        raise SystemExit(f"usage: python -m bench.bots.aiogram_echo tasks|sequential, {mode!r}?")
    asyncio.run(dp.start_polling(bot, handle_as_tasks=mode == "tasks"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tasks")
