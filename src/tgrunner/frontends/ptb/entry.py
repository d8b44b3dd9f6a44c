"""A python-telegram-bot entry point run unchanged: ``application.run_polling()`` runs on
tgrunner.

While tgrunner calls the user's ``main()``, :func:`intercept` turns its
``application.run_polling(...)`` into a :class:`~tgrunner.frontends.PollingCall` for the
runtime, which runs that Application on tgrunner (as :mod:`.adapter` describes) and returns
when it stopped, as ``run_polling`` does. What the call's arguments become:

- ``allowed_updates``: tgrunner's allowed updates (default, as with tgrunner's PTB front-end,
  ``Update.ALL_TYPES``);
- ``drop_pending_updates``: tgrunner drops the backlog at start;
- ``timeout``: the long-poll seconds;
- ``poll_interval``, ``bootstrap_retries``, ``close_loop``, ``stop_signals``: no counterpart
  (tgrunner retries with backoff and handles SIGINT and SIGTERM).

``application.run_webhook()`` and starting the ``Updater`` by hand
(``application.updater.start_polling()`` / ``start_webhook()``) are refused: tgrunner runs
the Application from its start, and serves a webhook itself (``--webhook-url``).
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

import tgrunner.frontends.ptb.compat as compat
from tgrunner.frontends import Handoff, PollingCall

__all__ = ["intercept", "polling_call"]

_IGNORED = ("poll_interval", "bootstrap_retries", "close_loop", "stop_signals")


def polling_call(application: Any, options: dict[str, Any]) -> PollingCall:
    """What ``application.run_polling(**options)`` asks for, as tgrunner runs it."""
    timeout = options.get("timeout")
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    allowed = options.get("allowed_updates")
    drop = options.get("drop_pending_updates")
    return PollingCall(
        target=application,
        call="application.run_polling()",
        allowed_updates=None if allowed is None else tuple(str(kind) for kind in allowed),
        drop_pending_updates=None if drop is None else bool(drop),
        timeout=None if timeout is None else int(timeout),
        ignored=tuple(name for name in _IGNORED if name in options),
    )


def intercept(handoff: Handoff) -> contextlib.AbstractContextManager[None]:
    """For the block, PTB's polling calls go to ``handoff`` (see the module docstring)."""

    def run_polling(application: Any, options: dict[str, Any]) -> None:
        handoff.run_call(polling_call(application, options))

    def refused(call: str) -> None:
        if "webhook" in call:
            reason = (
                "tgrunner runs the webhook itself: point tgrunner at the Application and pass "
                "--webhook-url and --listen, or call run_polling()"
            )
        else:
            reason = (
                "tgrunner runs the Application from its start and cannot take over an Updater "
                "started by hand: call application.run_polling() instead"
            )
        handoff.refuse(f"it calls {call}, and {reason} (or point tgrunner at the Application)")

    return compat.polling_calls(run_polling, refused)
