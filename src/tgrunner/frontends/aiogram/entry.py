"""An aiogram entry point run unchanged: ``await dp.start_polling(bot, ...)`` runs on tgrunner.

While tgrunner calls the user's ``main()``, :func:`intercept` turns its
``dp.start_polling(*bots, **kwargs)`` (or ``dp.run_polling(...)``) into a
:class:`~tgrunner.frontends.PollingCall` for the runtime, which runs that Dispatcher with those
Bots on tgrunner and returns when it stopped, so the code after the call (closing sessions,
say) runs as it would under aiogram. What the call's arguments become:

- ``bots``: the Bots to run (one per process);
- ``allowed_updates``: tgrunner's allowed updates (default, as in aiogram, the kinds the
  Dispatcher's handlers use);
- ``polling_timeout``: the long-poll seconds;
- any other keyword argument: workflow data for the handlers and hooks, as with aiogram;
- ``handle_as_tasks``, ``backoff_config``, ``handle_signals``, ``close_bot_session``,
  ``tasks_concurrency_limit``: no counterpart (tgrunner keeps per-chat order, retries with
  backoff, handles SIGINT and SIGTERM, closes the session, and has ``--concurrency``).

Registering aiogram's aiohttp webhook handler is refused: ``tgrunner run`` serves a webhook
itself (``--webhook-url``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types.base import UNSET

import tgrunner.frontends.aiogram.compat as compat
from tgrunner.frontends import Handoff, PollingCall

__all__ = ["intercept", "polling_call"]

_IGNORED = (
    "handle_as_tasks",
    "backoff_config",
    "handle_signals",
    "close_bot_session",
    "tasks_concurrency_limit",
)


def polling_call(
    dp: Dispatcher, bots: tuple[Bot, ...], options: dict[str, Any], call: str
) -> PollingCall:
    """What ``dp.start_polling(*bots, **options)`` asks for, as tgrunner runs it (see above)."""
    data = dict(options)
    timeout = data.pop("polling_timeout", None)
    allowed = data.pop("allowed_updates", None)
    ignored = tuple(name for name in _IGNORED if data.pop(name, None) is not None)
    return PollingCall(
        target=dp,
        call=call,
        options={"bot": list(bots) or None, "data": data},
        allowed_updates=None if allowed is None or allowed is UNSET else tuple(allowed),
        timeout=None if timeout is None else int(timeout),
        ignored=ignored,
    )


def intercept(handoff: Handoff) -> contextlib.AbstractContextManager[None]:
    """For the block, aiogram's polling calls go to ``handoff`` (see the module docstring)."""

    async def start_polling(dp: Dispatcher, bots: tuple[Bot, ...], options: dict[str, Any]) -> None:
        await handoff.serve_call(polling_call(dp, bots, options, "dp.start_polling()"))

    def run_polling(dp: Dispatcher, bots: tuple[Bot, ...], options: dict[str, Any]) -> None:
        handoff.run_call(polling_call(dp, bots, options, "dp.run_polling()"))

    def webhook() -> None:
        handoff.refuse(
            "it sets up aiogram's webhook request handler, and tgrunner runs the webhook "
            "itself: point tgrunner at the Dispatcher and pass --webhook-url and --listen, or "
            "start the bot with 'await dp.start_polling(bot)'"
        )

    return compat.polling_calls(start_polling, run_polling, webhook)
