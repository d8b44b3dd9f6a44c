"""The python-telegram-bot 22 front-end: an unchanged ``Application`` driven by tgrunner.

See :mod:`.adapter` for the lifecycle that replaces ``run_polling``, :mod:`.request` for the
PTB ``BaseRequest`` on tgrunner's HTTP client, :mod:`.launch` for ``run`` / ``serve`` /
``runner``, :mod:`.entry` for an unchanged ``main()`` that calls ``application.run_polling()``,
and :mod:`.compat` for the PTB internals tgrunner uses.
"""

from tgrunner.frontends.ptb.adapter import ALL_TYPES, REQUEST_MODES, PTBDriver, adapt
from tgrunner.frontends.ptb.launch import RunOptions, run, runner, serve

__all__ = [
    "ALL_TYPES",
    "REQUEST_MODES",
    "PTBDriver",
    "RunOptions",
    "adapt",
    "run",
    "runner",
    "serve",
]
