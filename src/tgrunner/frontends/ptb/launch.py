"""``run``: a python-telegram-bot ``Application`` on tgrunner from Python.

::

    from tgrunner.frontends.ptb import run
    run(application)                        # instead of application.run_polling()

This module sits above the runtime: it builds a :class:`~tgrunner.runtime.runner.Runner`
through :func:`tgrunner.runtime.build.build_runner`, which finds the PTB adapter by name. The
adapter itself never imports the runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from telegram.ext import Application

from tgrunner.runtime.build import build_runner
from tgrunner.settings import Settings

__all__ = ["run"]

_AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def run(
    application: _AnyApplication | Callable[[], _AnyApplication],
    *,
    token: str | None = None,
    api_url: str | None = None,
    request: str = "tgrunner",
    timeout: int | None = None,
    allowed_updates: Sequence[str] | None = None,
    drop_pending_updates: bool | None = None,
    settings: Settings | None = None,
) -> int:
    """Run a PTB application on tgrunner until SIGINT or SIGTERM; return the exit code.

    The counterpart of ``application.run_polling()``:

    - ``application``: the Application, or a function that builds one.
    - ``token`` / ``api_url``: default the bot's own (``api_url`` also from
      ``$TGRUNNER_API_URL``).
    - ``timeout``: long-poll seconds (default tgrunner's, 30).
    - ``allowed_updates``: default ``Update.ALL_TYPES`` (unless ``TGRUNNER_ALLOWED_UPDATES``).
    - ``drop_pending_updates``: skip the backlog on start (default False).
    - ``settings``: the rest (concurrency, grace, handler time limit…); default
      ``Settings.from_env()``.
    - ``request``: ``"tgrunner"`` (default) or ``"ptb"``; see
      :func:`tgrunner.frontends.ptb.adapter.adapt`.
    """
    if not isinstance(application, Application) and callable(application):
        application = application()
    settings = settings or Settings.from_env()
    polling = settings.polling
    if timeout is not None:
        polling = replace(polling, timeout=timeout)
    if allowed_updates is not None:
        polling = replace(polling, allowed_updates=tuple(str(k) for k in allowed_updates))
    if drop_pending_updates is not None:
        polling = replace(polling, drop_pending_updates=drop_pending_updates)
    runner = build_runner(
        application,
        token=token,
        api_url=api_url or os.environ.get("TGRUNNER_API_URL"),
        settings=replace(settings, polling=polling),
        request=request,
    )
    return runner.run()
