"""An aiogram echo bot for the front-end tests: replies with the text after a short random
pause, so that several updates are in flight at once and any reordering would show.

``tgrunner run aiogram_echo:dp`` finds the module-level ``bot``; ``aiogram_echo:create`` is a
factory returning a fresh ``(dp, bot)``.
"""

from __future__ import annotations

import asyncio
import random

from aiogram import Bot, Dispatcher, F, Router
from aiogram.types import Message

# A placeholder in Telegram's format: the tests pass FakeTelegram's token to tgrunner.
TOKEN = "123456:aiogram-echo-placeholder-token"


def create_dispatcher() -> Dispatcher:
    router = Router(name="echo")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await asyncio.sleep(random.uniform(0.0, 0.02))
        await message.answer(message.text or "")

    dp = Dispatcher()
    dp.include_router(router)
    return dp


def create() -> tuple[Dispatcher, Bot]:
    return create_dispatcher(), Bot(TOKEN)


bot = Bot(TOKEN)
dp = create_dispatcher()
