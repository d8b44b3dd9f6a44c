"""A module-level ``Bot(token=os.getenv("BOT_TOKEN"))``: aiogram validates the token as the
module is imported, so ``tgrunner run aiogram_env_bot:dp --token T`` must set ``BOT_TOKEN``
before it imports the module.
"""

from __future__ import annotations

import os

from aiogram import Bot, Dispatcher
from aiogram.types import Message

bot = Bot(token=os.getenv("BOT_TOKEN"))  # type: ignore[arg-type]
dp = Dispatcher()


@dp.message()
async def echo(message: Message) -> None:
    await message.answer(message.text or "")
