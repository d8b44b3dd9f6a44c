"""An aiogram 3 bot with a form: /form asks for a name (FSM state), then greets."""

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message

dp = Dispatcher()


class Form(StatesGroup):
    name = State()


@dp.message(Command("form"))
async def form(message: Message, state: FSMContext) -> None:
    await state.set_state(Form.name)
    await message.answer("What is your name?")


@dp.message(Form.name)
async def got_name(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(f"Nice to meet you, {message.text}!")


@dp.message()
async def echo(message: Message) -> None:
    await message.answer(message.text or "…")


async def main() -> None:
    await dp.start_polling(Bot(token=os.environ["BOT_TOKEN"]))


if __name__ == "__main__":
    asyncio.run(main())
