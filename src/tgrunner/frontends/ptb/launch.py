"""``run``, ``serve`` and ``runner``: a python-telegram-bot ``Application`` on tgrunner from
Python.

::

    from tgrunner.frontends.ptb import run
    run(application)                        # instead of application.run_polling()

    await serve(application)                # in async code; returns the exit code
    runner(application).stop()              # the Runner itself, for tests and embedding

This module sits above the runtime: it builds a :class:`~tgrunner.runtime.runner.Runner`
through :func:`tgrunner.runtime.build.build_runner`, which finds the PTB adapter by name. The
adapter itself never imports the runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from telegram.ext import Application

from tgrunner.runtime.build import build_runner
from tgrunner.settings import Settings

if TYPE_CHECKING:
    from tgrunner.runtime.runner import Runner

__all__ = ["RunOptions", "run", "runner", "serve"]

_AnyApplication = Application[Any, Any, Any, Any, Any, Any]


class RunOptions(TypedDict, total=False):
    """The keyword arguments of :func:`runner`, :func:`serve` and :func:`run` (see
    :func:`runner` for what each does and its default)."""

    token: str | None
    api_url: str | None
    request: str
    timeout: int | None
    allowed_updates: Sequence[str] | None
    drop_pending_updates: bool | None
    settings: Settings | None


def _polling_settings(
    settings: Settings,
    timeout: int | None,
    allowed_updates: Sequence[str] | None,
    drop_pending_updates: bool | None,
) -> Settings:
    """``settings`` with the ``run_polling``-style arguments given (not None) applied."""
    polling = settings.polling
    if timeout is not None:
        polling = replace(polling, timeout=timeout)
    if allowed_updates is not None:
        polling = replace(polling, allowed_updates=tuple(str(k) for k in allowed_updates))
    if drop_pending_updates is not None:
        polling = replace(polling, drop_pending_updates=drop_pending_updates)
    return replace(settings, polling=polling)


def runner(
    application: _AnyApplication | Callable[[], _AnyApplication],
    *,
    token: str | None = None,
    api_url: str | None = None,
    request: str = "tgrunner",
    timeout: int | None = None,
    allowed_updates: Sequence[str] | None = None,
    drop_pending_updates: bool | None = None,
    settings: Settings | None = None,
) -> Runner:
    """A :class:`~tgrunner.runtime.runner.Runner` for a PTB application, not yet started: await
    its ``serve()``, or call ``run()``; ``stop()`` (safe from any thread) ends it cleanly.

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
    return build_runner(
        application,
        token=token,
        api_url=api_url or os.environ.get("TGRUNNER_API_URL"),
        settings=_polling_settings(
            settings or Settings.from_env(), timeout, allowed_updates, drop_pending_updates
        ),
        request=request,
    )


async def serve(
    application: _AnyApplication | Callable[[], _AnyApplication],
    *,
    install_signals: bool = True,
    **kwargs: Unpack[RunOptions],
) -> int:
    """Run a PTB application on tgrunner in the running event loop until stopped (SIGINT or
    SIGTERM when ``install_signals``, default True); return the exit code (0: clean stop).

    The async counterpart of ``application.run_polling()``. Keyword arguments are those of
    :func:`runner`."""
    return await runner(application, **kwargs).serve(install_signals=install_signals)


def run(
    application: _AnyApplication | Callable[[], _AnyApplication],
    **kwargs: Unpack[RunOptions],
) -> int:
    """Run a PTB application on tgrunner until SIGINT or SIGTERM; return the exit code.

    The counterpart of ``application.run_polling()``. Keyword arguments are those of
    :func:`runner`."""
    return runner(application, **kwargs).run()
