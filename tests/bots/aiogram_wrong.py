"""aiogram targets that cannot be a bot: the Router, the Bot, a handler; and entry points
tgrunner refuses (a webhook, a second bot)."""

from __future__ import annotations

from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

TOKEN = "123456:aiogram-wrong-placeholder-token"

router = Router()
dp = Dispatcher()
dp.include_router(router)
bot = Bot(TOKEN)


@router.message()
async def handler(message: Message) -> None:
    await message.answer(message.text or "")


def main() -> None:
    """aiogram's webhook layout: refused (webhooks are not supported yet)."""
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot).register(app, path="/webhook")
    setup_application(app, dp, bot=bot)
    web.run_app(app, host="127.0.0.1", port=8080)


async def polls_at_factory() -> Dispatcher:
    """With --factory: refused, it starts polling itself."""
    await dp.start_polling(bot)
    return dp
