"""A realistic aiogram 3 bot that runs unchanged under aiogram's own polling or under tgrunner.

It has commands, an inline keyboard (a counter kept in FSM data), a multi-step FSM form with
buttons, a handler that fails with an error handler answering, one that fails unhandled, a
slow handler, an inner and an outer middleware, magic filters, routers and lifecycle hooks.

Run it against FakeTelegram (``tgrunner fake-telegram --port 8081`` prints a token)::

    cd examples
    export BOT_TOKEN=<token>
    tgrunner run aiogram_bot:dp --api-url http://127.0.0.1:8081
    tgrunner run aiogram_bot:create --api-url ...     # a factory: a fresh (dp, bot)
    BOT_TOKEN=<token> BOT_API_URL=http://127.0.0.1:8081 python aiogram_bot.py   # aiogram's own

``BOT_TOKEN`` and ``BOT_API_URL`` configure the module-level Bot; ``SLOW_SECONDS`` (default 2)
is how long ``/slow`` works.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandStart, ExceptionTypeFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    ErrorEvent,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)

log = logging.getLogger("aiogram_bot")

TOKEN = os.environ.get("BOT_TOKEN", "123456:set-BOT_TOKEN-to-your-token")
API_URL = os.environ.get("BOT_API_URL")
SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "2"))

GREETINGS = {"en": "Hello", "de": "Hallo", "fr": "Bonjour"}


# -- middlewares -------------------------------------------------------------------------------


class LanguageMiddleware(BaseMiddleware):
    """Inner middleware: puts the sender's language (default "en") into the handler's data."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        code = (user.language_code if user else None) or "en"
        data["lang"] = code if code in GREETINGS else "en"
        return await handler(event, data)


class CountUpdates(BaseMiddleware):
    """Outer middleware on every update: counts them by kind in the ``stats`` workflow data."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        data["stats"][getattr(event, "event_type", "unknown")] += 1
        return await handler(event, data)


# -- the counter: commands and an inline keyboard ------------------------------------------------


class Step(CallbackData, prefix="count"):
    delta: int


def counter_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="−1", callback_data=Step(delta=-1).pack()),
                InlineKeyboardButton(text="+1", callback_data=Step(delta=1).pack()),
            ],
            [InlineKeyboardButton(text="Show", callback_data="show")],
        ]
    )


def menu_router() -> Router:
    router = Router(name="menu")
    router.message.middleware(LanguageMiddleware())

    @router.message(CommandStart())
    async def start(message: Message, state: FSMContext, lang: str) -> None:
        count = (await state.get_data()).get("count", 0)
        name = html.escape(message.from_user.first_name if message.from_user else "there")
        await message.answer(
            f"{GREETINGS[lang]}, <b>{name}</b>! Count: {count}",
            reply_markup=counter_keyboard(),
        )

    @router.message(Command("help"))
    async def help_(message: Message) -> None:
        await message.answer(
            "/start: the counter\n/form: tell me about you\n/cancel: stop the form\n"
            "/slow: a slow task\n/fail, /boom: errors"
        )

    @router.callback_query(Step.filter())
    async def step(query: CallbackQuery, callback_data: Step, state: FSMContext) -> None:
        count = (await state.get_data()).get("count", 0) + callback_data.delta
        await state.update_data(count=count)
        await query.answer(f"Count: {count}")
        if isinstance(query.message, Message):
            await query.message.edit_text(f"Count: {count}", reply_markup=counter_keyboard())

    @router.callback_query(F.data == "show")
    async def show(query: CallbackQuery, state: FSMContext) -> None:
        count = (await state.get_data()).get("count", 0)
        await query.answer()
        if isinstance(query.message, Message):
            await query.message.answer(f"The count is {count}.")

    return router


# -- a multi-step form (FSM) ----------------------------------------------------------------------


class Form(StatesGroup):
    name = State()
    age = State()
    confirm = State()


def confirm_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Yes", callback_data="form:yes"),
                InlineKeyboardButton(text="No", callback_data="form:no"),
            ]
        ]
    )


def form_router() -> Router:
    router = Router(name="form")

    @router.message(Command("form"))
    async def begin(message: Message, state: FSMContext) -> None:
        await state.set_state(Form.name)
        await message.answer("What is your name?")

    @router.message(Command("cancel"))
    async def cancel(message: Message, state: FSMContext) -> None:
        if await state.get_state() is None:
            await message.answer("Nothing to cancel.")
            return
        await state.set_state(None)
        await message.answer("Cancelled.")

    @router.message(Form.name, F.text)
    async def got_name(message: Message, state: FSMContext) -> None:
        await state.update_data(name=message.text)
        await state.set_state(Form.age)
        await message.answer(f"How old are you, {html.escape(message.text or '')}?")

    @router.message(Form.age, F.text.regexp(r"^\d{1,3}$"))
    async def got_age(message: Message, state: FSMContext) -> None:
        data = await state.update_data(age=int(message.text or 0))
        await state.set_state(Form.confirm)
        await message.answer(
            f"Save {html.escape(data['name'])}, {data['age']}?", reply_markup=confirm_keyboard()
        )

    @router.message(Form.age)
    async def bad_age(message: Message) -> None:
        await message.answer("Please send your age as a number.")

    @router.callback_query(Form.confirm, F.data.in_({"form:yes", "form:no"}))
    async def confirmed(query: CallbackQuery, state: FSMContext) -> None:
        data = await state.get_data()
        await state.set_state(None)
        await query.answer()
        if not isinstance(query.message, Message):
            return
        if query.data == "form:yes":
            await query.message.answer(f"Saved: {html.escape(data['name'])}, {data['age']}.")
        else:
            await query.message.answer("Not saved.")

    return router


# -- slow and failing handlers, and the fallback --------------------------------------------------


def misc_router() -> Router:
    router = Router(name="misc")

    @router.message(Command("slow"))
    async def slow(message: Message) -> None:
        await message.answer("Working on it…")
        await asyncio.sleep(SLOW_SECONDS)
        await message.answer("Done.")

    @router.message(Command("fail"))
    async def fail(message: Message) -> None:
        raise ValueError("the input was bad")  # answered by on_value_error

    @router.message(Command("boom"))
    async def boom(message: Message) -> None:
        raise RuntimeError("this handler fails on purpose; the bot keeps running")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"You said: {html.escape(message.text or '')}")

    return router


async def on_value_error(event: ErrorEvent, message: Message) -> None:
    await message.answer(f"Sorry, that failed: {html.escape(str(event.exception))}")


# -- lifecycle and assembly -----------------------------------------------------------------------


async def on_startup(bot: Bot) -> None:
    await bot.set_my_commands(
        [
            BotCommand(command="start", description="the counter"),
            BotCommand(command="form", description="tell me about you"),
            BotCommand(command="help", description="what I can do"),
        ]
    )
    log.info("commands set")


async def on_shutdown(stats: Counter[str]) -> None:
    log.info("handled updates by kind: %s", dict(stats))


def create_dispatcher(storage: BaseStorage | None = None, **data: Any) -> Dispatcher:
    """A new Dispatcher with fresh routers (a Router belongs to one parent only)."""
    dp = Dispatcher(storage=storage or MemoryStorage(), stats=Counter(), **data)
    dp.update.outer_middleware(CountUpdates())
    dp.include_routers(menu_router(), form_router(), misc_router())
    dp.errors.register(
        on_value_error, ExceptionTypeFilter(ValueError), F.update.message.as_("message")
    )
    dp.startup.register(on_startup)
    dp.shutdown.register(on_shutdown)
    return dp


def create_bot(token: str | None = None, api_url: str | None = None) -> Bot:
    api_url = api_url or API_URL
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url)) if api_url else None
    return Bot(
        token or TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML)
    )


def create() -> tuple[Dispatcher, Bot]:
    """A factory for ``tgrunner run aiogram_bot:create``."""
    return create_dispatcher(), create_bot()


bot = create_bot()
dp = create_dispatcher()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    dp.run_polling(bot)
