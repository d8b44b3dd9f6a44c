"""An unchanged aiogram bot with a 3-step form in aiogram's default MemoryStorage FSM, for the
worker-process tests: ``/start`` asks the name, then the age, then the city, and the last
answer sums it up with the pid of the process that held the state (``done NAME AGE CITY in
PID``). A reply comes from another worker than the state's only if sticky routing failed: the
FSM state would then be missing there.

With ``$HOOKS_DIR`` set, the startup and shutdown hooks each leave a file there named after
the hook and the process id (``startup-4242``).
"""

from __future__ import annotations

import os
from pathlib import Path

from aiogram import Dispatcher, F
from aiogram.filters import CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message

dp = Dispatcher()


class Form(StatesGroup):
    name = State()
    age = State()
    city = State()


def _mark(hook: str) -> None:
    where = os.environ.get("HOOKS_DIR")
    if where:
        (Path(where) / f"{hook}-{os.getpid()}").touch()


@dp.startup()
async def on_startup() -> None:
    _mark("startup")


@dp.shutdown()
async def on_shutdown() -> None:
    _mark("shutdown")


@dp.message(CommandStart())
async def start(message: Message, state: FSMContext) -> None:
    await state.set_state(Form.name)
    await message.answer("name?")


@dp.message(Form.name, F.text)
async def got_name(message: Message, state: FSMContext) -> None:
    await state.update_data(name=message.text)
    await state.set_state(Form.age)
    await message.answer("age?")


@dp.message(Form.age, F.text)
async def got_age(message: Message, state: FSMContext) -> None:
    await state.update_data(age=message.text)
    await state.set_state(Form.city)
    await message.answer("city?")


@dp.message(Form.city, F.text)
async def got_city(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    await state.clear()
    await message.answer(f"done {data['name']} {data['age']} {message.text} in {os.getpid()}")


@dp.message()
async def lost(message: Message) -> None:
    await message.answer(f"no form here: {message.text}")
