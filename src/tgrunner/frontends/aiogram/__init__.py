"""The aiogram 3 front-end: an unchanged ``Dispatcher`` and ``Bot`` driven by tgrunner.

See :mod:`.adapter` for how the Bot is found and what replaces ``start_polling``,
:mod:`.session` for the aiogram ``BaseSession`` on tgrunner's HTTP client, :mod:`.launch` for
``run`` / ``serve`` / ``runner``, :mod:`.entry` for an unchanged ``main()`` that calls
``dp.start_polling(bot)``, and :mod:`.compat` for the aiogram internals tgrunner uses.
"""

from tgrunner.frontends.aiogram.adapter import (
    TgrunnerSession,
    adapt,
    event_context,
    find_bot,
    fsm_keys,
    inline_magic_filters,
)
from tgrunner.frontends.aiogram.launch import run, runner, serve

__all__ = [
    "TgrunnerSession",
    "adapt",
    "event_context",
    "find_bot",
    "fsm_keys",
    "inline_magic_filters",
    "run",
    "runner",
    "serve",
]
