"""An aiogram entry point with the usual extras: allowed updates, a polling timeout and
workflow data passed to ``start_polling``, a resource opened around it, and cleanup after it.

``tgrunner run aiogram_quick_main:main`` runs it unchanged. The handler answers with the
workflow data ``greeting``; once ``start_polling`` returns (tgrunner stopped), main closes the
Bot's session and writes ``main: cleanup ran (resource open during polling: True)`` to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator

from aiogram import Bot, Dispatcher
from aiogram.types import Message

dp = Dispatcher()
state = {"open": False, "seen_open": False}


@contextlib.asynccontextmanager
async def resource() -> AsyncIterator[None]:
    state["open"] = True
    try:
        yield
    finally:
        state["open"] = False


@dp.message()
async def echo(message: Message, greeting: str) -> None:
    state["seen_open"] = state["open"]
    await message.answer(f"{greeting} {message.text}")


async def main() -> None:
    bot = Bot(token=os.environ["BOT_TOKEN"])
    async with resource():
        await dp.start_polling(
            bot,
            allowed_updates=dp.resolve_used_update_types(),
            polling_timeout=7,
            greeting="echo:",
        )
    await bot.session.close()
    seen = state["seen_open"]
    print(f"main: cleanup ran (resource open during polling: {seen})", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
