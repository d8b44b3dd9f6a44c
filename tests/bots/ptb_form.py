"""An unchanged python-telegram-bot bot with a 3-step ``ConversationHandler``, for the
worker-process tests: ``/start`` asks the name, then the age, then the city, and the last
answer sums it up with the pid of the process that held the conversation (``done NAME AGE
CITY in PID``). Its token and server are placeholders that the command line replaces.

- ``$HOOKS_DIR``: ``post_init``, ``post_stop`` and ``post_shutdown`` each leave a file there
  named after the hook and the process id (``post_init-4242``).
- ``$PTB_JOB_CHAT``: ``post_init`` adds a job repeating every 0.1 s that sends ``job PID`` to
  that chat.
- ``$PTB_PICKLE``: the application keeps its data in a ``PicklePersistence`` at that path.

``/remind`` (outside the form) schedules a job from the handler, which answers ``reminder
from PID`` 0.05 s later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)

NAME, AGE, CITY = range(3)


def _mark(hook: str) -> None:
    where = os.environ.get("HOOKS_DIR")
    if where:
        (Path(where) / f"{hook}-{os.getpid()}").touch()


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    await update.effective_message.reply_text("name?")
    return NAME


async def got_name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data["name"] = update.effective_message.text
    await update.effective_message.reply_text("age?")
    return AGE


async def got_age(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    context.user_data["age"] = update.effective_message.text
    await update.effective_message.reply_text("city?")
    return CITY


async def got_city(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    data = context.user_data
    text = f"done {data['name']} {data['age']} {update.effective_message.text} in {os.getpid()}"
    await update.effective_message.reply_text(text)
    return ConversationHandler.END


def form_states() -> dict[object, list[MessageHandler[Any, Any]]]:
    """The form's three steps, for a ``ConversationHandler`` (``ptb_form_state`` asks the
    same form, on tgrunner's persistence)."""
    text = filters.TEXT & ~filters.COMMAND
    return {
        NAME: [MessageHandler(text, got_name)],
        AGE: [MessageHandler(text, got_age)],
        CITY: [MessageHandler(text, got_city)],
    }


async def job(context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.bot.send_message(int(os.environ["PTB_JOB_CHAT"]), f"job {os.getpid()}")


async def remind(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.job_queue is not None
    context.job_queue.run_once(reminder, 0.05, chat_id=update.effective_chat.id)


async def reminder(context: ContextTypes.DEFAULT_TYPE) -> None:
    assert context.job is not None and context.job.chat_id is not None
    await context.bot.send_message(context.job.chat_id, f"reminder from {os.getpid()}")


async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    _mark("post_init")
    if os.environ.get("PTB_JOB_CHAT") and app.job_queue is not None:
        app.job_queue.run_repeating(job, interval=0.1, first=0.1)


async def post_stop(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    _mark("post_stop")


async def post_shutdown(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    _mark("post_shutdown")


builder = (
    ApplicationBuilder()
    .token("1:placeholder")
    .base_url("https://api.telegram.org/bot")
    .post_init(post_init)
    .post_stop(post_stop)
    .post_shutdown(post_shutdown)
)
if os.environ.get("PTB_PICKLE"):
    builder = builder.persistence(PicklePersistence(os.environ["PTB_PICKLE"]))
application = builder.build()
application.add_handler(
    ConversationHandler(
        entry_points=[CommandHandler("start", start)],
        states=form_states(),
        fallbacks=[],
    )
)
application.add_handler(CommandHandler("remind", remind))
