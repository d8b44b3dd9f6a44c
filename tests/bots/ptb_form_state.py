"""An unchanged python-telegram-bot bot whose 3-step ``ConversationHandler`` and
``user_data`` live in tgrunner's state store (``TgrunnerPersistence``, on the store of
``tgrunner run``): ``/start`` asks the name, then the age, then the city, and the last answer
sums it up with the pid of the process that answered (``done NAME AGE CITY in PID``): the
form of :mod:`ptb_form`. The conversation goes on in any worker process, and after a
restart or a crash. Its token and server are placeholders that the command line replaces."""

from __future__ import annotations

from ptb_form import form_states, start
from telegram.ext import ApplicationBuilder, CommandHandler, ConversationHandler

from tgrunner.state.bridges.ptb import TgrunnerPersistence

application = (
    ApplicationBuilder()
    .token("1:placeholder")
    .base_url("https://api.telegram.org/bot")
    .persistence(TgrunnerPersistence())
    .build()
)
application.add_handler(
    ConversationHandler(
        entry_points=[CommandHandler("start", start)],
        states=form_states(),
        fallbacks=[],
        name="form",
        persistent=True,
    )
)
