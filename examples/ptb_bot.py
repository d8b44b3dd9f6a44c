"""A python-telegram-bot 22 bot that runs unchanged on PTB's own runner and on tgrunner.

On tgrunner (per-chat order, no lost update, a clean stop)::

    BOT_TOKEN=123:abc tgrunner run ptb_bot:create

On PTB's own runner, for comparison::

    BOT_TOKEN=123:abc python ptb_bot.py

From Python: ``from tgrunner.frontends.ptb import run; run(create)``.

What it does:

- ``/start`` shows a menu with inline buttons: "Count" (a per-user counter kept by the
  persistence) and "About" (edits the menu);
- ``/order`` is a three-step conversation (size, name, confirmation) with ``/cancel``;
- ``/remind`` schedules a JobQueue job that writes back a moment later;
- ``/slow`` takes its time before answering; ``/boom`` raises, and the error handler apologises;
- ``/help`` lists the commands.

Everything is kept in ``ptb_bot.pickle`` (``PicklePersistence``): counters, chat data and the
state of unfinished conversations survive a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)

log = logging.getLogger(__name__)

TELEGRAM = "https://api.telegram.org"
SIZE, NAME, CONFIRM = range(3)
SIZES = ("S", "M", "L")

MENU = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Count", callback_data="count"),
            InlineKeyboardButton("About", callback_data="about"),
        ]
    ]
)
HELP = (
    "/start: the menu\n/order: order a T-shirt\n/remind: a reminder in a moment\n"
    "/slow: a slow answer\n/boom: a handler that fails\n/help: this text"
)

Context = ContextTypes.DEFAULT_TYPE


async def start(update: Update, context: Context) -> None:
    user = update.effective_user
    name = user.first_name if user else "there"
    await update.effective_message.reply_text(f"Hi {name}! Pick one:", reply_markup=MENU)


async def show_help(update: Update, context: Context) -> None:
    await update.effective_message.reply_text(HELP)


async def pressed(update: Update, context: Context) -> None:
    query = update.callback_query
    if query.data == "count":
        count = context.user_data.get("count", 0) + 1
        context.user_data["count"] = count
        await query.answer()
        await query.edit_message_text(f"Count: {count}", reply_markup=MENU)
    else:
        await query.answer("A sample bot")
        await query.edit_message_text(
            "This bot runs unchanged on python-telegram-bot and on tgrunner.", reply_markup=MENU
        )


# -- the conversation --------------------------------------------------------------------------


async def order(update: Update, context: Context) -> int:
    await update.effective_message.reply_text(
        "What size? S, M or L",
        reply_markup=ReplyKeyboardMarkup([list(SIZES)], one_time_keyboard=True),
    )
    return SIZE


async def size(update: Update, context: Context) -> int:
    text = update.effective_message.text.strip().upper()
    if text not in SIZES:
        await update.effective_message.reply_text("Please answer S, M or L.")
        return SIZE
    context.user_data["size"] = text
    await update.effective_message.reply_text(
        "Whose name goes on it?", reply_markup=ReplyKeyboardRemove()
    )
    return NAME


async def name(update: Update, context: Context) -> int:
    context.user_data["name"] = update.effective_message.text.strip()
    await update.effective_message.reply_text(
        f"A size {context.user_data['size']} T-shirt for {context.user_data['name']}. "
        "Confirm? yes or no",
        reply_markup=ReplyKeyboardMarkup([["yes", "no"]], one_time_keyboard=True),
    )
    return CONFIRM


async def confirm(update: Update, context: Context) -> int:
    answer = update.effective_message.text.strip().lower()
    if answer not in ("yes", "no"):
        await update.effective_message.reply_text("Please answer yes or no.")
        return CONFIRM
    if answer == "yes":
        orders = context.chat_data.setdefault("orders", [])
        orders.append(f"{context.user_data['size']} for {context.user_data['name']}")
        text = f"Order #{len(orders)} confirmed: {orders[-1]}."
    else:
        text = "Order dropped."
    await update.effective_message.reply_text(text, reply_markup=ReplyKeyboardRemove())
    return ConversationHandler.END


async def cancel(update: Update, context: Context) -> int:
    await update.effective_message.reply_text("Cancelled.", reply_markup=ReplyKeyboardRemove())
    return ConversationHandler.END


# -- errors ----------------------------------------------------------------------------------


async def boom(update: Update, context: Context) -> None:
    raise RuntimeError("boom: this handler fails on purpose")


async def on_error(update: object, context: Context) -> None:
    log.warning("handler failed: %r", context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        await context.bot.send_message(update.effective_chat.id, "Sorry, something went wrong.")


# -- the application ---------------------------------------------------------------------------


def build(
    token: str,
    *,
    api_url: str = TELEGRAM,
    persistence_path: str | os.PathLike[str] = "ptb_bot.pickle",
    slow_seconds: float = 2.0,
    remind_seconds: float = 5.0,
) -> Application:  # type: ignore[type-arg]
    """The bot's Application, talking to ``api_url`` (a local Bot API server, FakeTelegram)."""

    async def slow(update: Update, context: Context) -> None:
        await asyncio.sleep(slow_seconds)
        await update.effective_message.reply_text("Done, after a pause.")

    async def remind(update: Update, context: Context) -> None:
        chat_id = update.effective_chat.id
        await update.effective_message.reply_text("Reminder set.")
        context.job_queue.run_once(ring, remind_seconds, chat_id=chat_id, name=f"remind:{chat_id}")

    async def ring(context: Context) -> None:
        await context.bot.send_message(context.job.chat_id, "Reminder!")

    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .persistence(PicklePersistence(persistence_path))
        .build()
    )
    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("order", order)],
            states={
                SIZE: [MessageHandler(filters.TEXT & ~filters.COMMAND, size)],
                NAME: [MessageHandler(filters.TEXT & ~filters.COMMAND, name)],
                CONFIRM: [MessageHandler(filters.TEXT & ~filters.COMMAND, confirm)],
            },
            fallbacks=[CommandHandler("cancel", cancel)],
            name="order",
            persistent=True,
        )
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("help", show_help))
    app.add_handler(CommandHandler("slow", slow))
    app.add_handler(CommandHandler("remind", remind))
    app.add_handler(CommandHandler("boom", boom))
    app.add_handler(CallbackQueryHandler(pressed))
    app.add_error_handler(on_error)
    return app


def create() -> Application:  # type: ignore[type-arg]
    """Build from the environment: ``BOT_TOKEN`` (or ``TGRUNNER_TOKEN``), and ``BOT_API_URL``
    (default Telegram's)."""
    token = os.environ.get("BOT_TOKEN") or os.environ.get("TGRUNNER_TOKEN")
    if not token:
        raise SystemExit("Set BOT_TOKEN to the token @BotFather gave you.")
    return build(token, api_url=os.environ.get("BOT_API_URL", TELEGRAM))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    create().run_polling(allowed_updates=Update.ALL_TYPES)
