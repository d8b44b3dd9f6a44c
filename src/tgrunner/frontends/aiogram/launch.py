"""``run``, ``serve`` and ``runner``: an aiogram Dispatcher on tgrunner from Python.

::

    from tgrunner.frontends.aiogram import run
    run(dp, bot)                   # instead of dp.run_polling(bot)

This module sits above the runtime: it builds a :class:`~tgrunner.runtime.runner.Runner`
through :func:`tgrunner.runtime.build.build_runner`, which finds the aiogram adapter by name.
The adapter itself never imports the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher

from tgrunner.runtime.build import build_runner

if TYPE_CHECKING:
    from tgrunner.runtime.runner import Runner
    from tgrunner.settings import Settings

__all__ = ["run", "runner", "serve"]


def runner(
    dp: Dispatcher,
    *bots: Bot,
    token: str | None = None,
    api_url: str | None = None,
    session: str = "tgrunner",
    settings: Settings | None = None,
    **data: Any,
) -> Runner:
    """A :class:`~tgrunner.runtime.runner.Runner` for ``dp`` and its Bot (found as described in
    :mod:`tgrunner.frontends.aiogram.adapter` when ``bots`` is empty). ``data`` is workflow
    data, as for ``start_polling``; ``session`` defaults to ``"tgrunner"``; ``settings``
    default to ``Settings.from_env()``."""
    return build_runner(
        dp,
        token=token,
        api_url=api_url,
        settings=settings,
        session=session,
        bot=list(bots) or None,
        data=data,
    )


async def serve(
    dp: Dispatcher,
    *bots: Bot,
    install_signals: bool = True,
    **kwargs: Any,
) -> int:
    """Like ``await dp.start_polling(bot)``, on tgrunner; returns the exit code (0: clean stop).

    Keyword arguments are those of :func:`runner`."""
    return await runner(dp, *bots, **kwargs).serve(install_signals=install_signals)


def run(dp: Dispatcher, *bots: Bot, **kwargs: Any) -> int:
    """Like ``dp.run_polling(bot)``, on tgrunner: blocks until SIGINT/SIGTERM and returns the
    exit code. Keyword arguments are those of :func:`runner`."""
    return runner(dp, *bots, **kwargs).run()
