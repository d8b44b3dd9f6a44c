"""The bank of ``bank_bot.py`` as an aiogram 3 bot, with a confirmation step in its FSM:

    /transfer 10 @bob    ->  Send 10 to @bob? yes/no
    yes                  ->  Sent 10 to @bob. You have 90.

The FSM state lives in tgrunner's state store (``TgrunnerStorage``), beside the accounts, so
a conversation survives a restart or a crash, and with ``--workers N`` any worker process
sees it. The transfer is one transaction on the two accounts and the FSM record, so a "yes"
redelivered after a crash cannot send the money twice::

    cd examples
    tgrunner fake-telegram --port 8081            # prints the API URL and a token
    export BOT_TOKEN=<the token>
    tgrunner run bank_aiogram:dp --api-url http://127.0.0.1:8081 --workers 2 \\
        --state sqlite:///bank.db                 # or postgresql://, mysql://, redis://
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher, F
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message, TelegramObject, User

from tgrunner.state import Store
from tgrunner.state.bridges.aiogram import TgrunnerStorage

START = 100
"""The coins of a new account."""

TRANSFER = re.compile(r"^/transfer(?:@\w+)?\s+(?P<amount>\d+)\s+@(?P<name>\w+)\s*$")

storage = TgrunnerStorage()  # the store of 'tgrunner run' (--state), found when first used
dp = Dispatcher(storage=storage)


class Confirm(StatesGroup):
    transfer = State()


def account(user_id: int) -> str:
    return f"bank:account:{user_id}"


def name_key(username: str) -> str:
    return f"bank:name:{username.lower()}"


async def open_account(store: Store, user: User) -> None:
    """An account of :data:`START` coins for a new user, and their @username remembered."""
    key = account(user.id)
    if await store.get(key) is None:
        async with store.transaction(key) as tx:
            if await tx.get(key) is None:
                tx.set(key, START)
    if user.username and await store.get(name_key(user.username)) != user.id:
        await store.set(name_key(user.username), user.id)


async def transfer(store: Store, fsm: FSMContext, src: int) -> str:
    """Make the transfer ``fsm`` waits for, and clear it, in one transaction on the two
    accounts and the FSM record: a "yes" handled twice (redelivered after a crash) finds
    the record gone and moves nothing. The answer to send."""
    pending = await fsm.get_data()  # to learn the receiver; checked again under the locks
    state_key, data_key = storage.keys_of(fsm.key)
    a, b = account(src), account(pending["dst"])
    async with store.transaction(a, b, state_key, data_key) as tx:
        if await tx.get(state_key) != Confirm.transfer.state or await tx.get(data_key) != pending:
            return "That transfer was answered already."
        tx.delete(state_key)
        tx.delete(data_key)
        have, amount = await tx.get(a, 0), pending["amount"]
        if have < amount:
            return f"You have {have}, not {amount}."
        tx.set(a, have - amount)
        tx.set(b, await tx.get(b, 0) + amount)
    return f"Sent {amount} to @{pending['name']}. You have {have - amount}."


class Accounts(BaseMiddleware):
    """Every user who writes gets an account."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        if user is not None:
            await open_account(storage.store, user)
        return await handler(event, data)


dp.message.outer_middleware(Accounts())


@dp.message(Command("start", "balance"))
async def balance(message: Message) -> None:
    assert message.from_user is not None
    have = await storage.store.get(account(message.from_user.id), 0)
    await message.answer(f"You have {have} coins. Send some with /transfer AMOUNT @user.")


@dp.message(Command("transfer"))
async def ask(message: Message, state: FSMContext) -> None:
    assert message.from_user is not None
    found = TRANSFER.match(message.text or "")
    if found is None or int(found["amount"]) < 1:
        await message.answer("Usage: /transfer AMOUNT @user")
        return
    name, amount = found["name"], int(found["amount"])
    dst = await storage.store.get(name_key(name))
    if dst is None or dst == message.from_user.id:
        await message.answer(f"I cannot send coins to @{name}: they must write to me first.")
        return
    await state.set_state(Confirm.transfer)
    await state.update_data(amount=amount, name=name, dst=dst)
    await message.answer(f"Send {amount} to @{name}? yes/no")


@dp.message(Confirm.transfer, F.text.lower() == "yes")
async def confirmed(message: Message, state: FSMContext) -> None:
    assert message.from_user is not None
    await message.answer(await transfer(storage.store, state, message.from_user.id))


@dp.message(Confirm.transfer, F.text.lower() == "no")
async def cancelled(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer("Cancelled.")


@dp.message(Confirm.transfer)
async def unclear(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    await message.answer(f"Send {data['amount']} to @{data['name']}? Answer yes or no.")
