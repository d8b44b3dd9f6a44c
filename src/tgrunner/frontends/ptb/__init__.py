"""The python-telegram-bot 22 front-end: an unchanged ``Application`` driven by tgrunner.

See :mod:`.adapter` for the lifecycle that replaces ``run_polling``, and :mod:`.request` for
the PTB ``BaseRequest`` on tgrunner's HTTP client.
"""

from tgrunner.frontends.ptb.adapter import ALL_TYPES, REQUEST_MODES, PTBDriver, adapt, run

__all__ = ["ALL_TYPES", "REQUEST_MODES", "PTBDriver", "adapt", "run"]
