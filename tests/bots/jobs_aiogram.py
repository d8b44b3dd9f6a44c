"""An aiogram bot of the RQ-worker pattern: the handler queues ``render`` (an async task)
with the message as its reply target and answers "⏳ Processing…"; a job worker replies
``done: TEXT`` to the message."""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.types import Message

from tgrunner.jobs import task

dp = Dispatcher()


@task
async def render(text: str) -> str:
    return f"done: {text}"


@dp.message()
async def handle(message: Message) -> None:
    await render.enqueue(message.text or "", reply_to=message)
    await message.answer("⏳ Processing…")
