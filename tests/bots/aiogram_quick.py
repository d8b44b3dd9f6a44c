"""aiogram's quickstart layout (its examples/echo_bot.py): the Dispatcher at module level, the
Bot created inside ``async def main()``, the token from ``BOT_TOKEN``.

``tgrunner run aiogram_quick:dp`` creates the Bot itself; ``tgrunner run aiogram_quick:main``
runs ``main()`` unchanged, and tgrunner runs the Dispatcher when main reaches start_polling.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from os import getenv

from aiogram import Bot, Dispatcher, html
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.filters import CommandStart
from aiogram.types import Message

TOKEN = getenv("BOT_TOKEN")

dp = Dispatcher()


@dp.message(CommandStart())
async def command_start_handler(message: Message) -> None:
    name = message.from_user.full_name if message.from_user else "stranger"
    await message.answer(f"Hello, {html.bold(name)}!")


@dp.message()
async def echo_handler(message: Message) -> None:
    await message.answer(message.text or "")


async def main() -> None:
    bot = Bot(token=TOKEN or "", default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    await dp.start_polling(bot)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    asyncio.run(main())
