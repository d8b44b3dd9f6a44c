"""An aiogram bot whose handler returns its reply instead of awaiting it (aiogram's webhook
convention): with ``--webhook-mode direct`` the reply rides in the webhook's answer."""

from __future__ import annotations

from typing import Any

from aiogram import Dispatcher
from aiogram.types import Message

dp = Dispatcher()


@dp.message()
async def echo(message: Message) -> Any:
    return message.answer(message.text or "")
