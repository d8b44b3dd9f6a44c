"""Turn whatever the user's import string names into a ready :class:`~.runner.Runner`.

The native front-end takes a :class:`~tgrunner.Router` or an ``async fn(update, bot)``;
:func:`tgrunner.frontends.detect` recognises aiogram and python-telegram-bot objects.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from tgrunner.client.bot import DEFAULT_API_URL
from tgrunner.errors import ConfigError
from tgrunner.frontends import Frontend, detect
from tgrunner.frontends.native.router import Router
from tgrunner.runtime.loader import load_target
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings

__all__ = ["build_runner", "frontend_for"]


def frontend_for(obj: Any, **options: Any) -> Frontend:
    """The :class:`Frontend` that drives ``obj``; ConfigError when nothing can.

    ``options`` (``token``, ``api_url``, front-end switches) go to the framework's adapter.
    """
    if isinstance(obj, Router) or inspect.iscoroutinefunction(obj):
        return Frontend(handler=obj)
    found = detect(obj, **options)
    if found is not None:
        return found
    raise ConfigError(
        f"tgrunner cannot run a {type(obj).__module__}.{type(obj).__name__}. Point it at a "
        "tgrunner Router or an 'async def handler(update, bot)', an aiogram Dispatcher, a "
        "python-telegram-bot Application, or a factory returning one of them."
    )


def build_runner(
    target: str | Any,
    *,
    token: str | None = None,
    api_url: str | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> Runner:
    """Load ``target`` (an import string or the object itself) and wrap it in a Runner.

    ``token`` and ``api_url`` given here win over those of the framework's own bot object;
    ``api_url`` defaults to the framework's, else Telegram's. ``settings`` defaults to
    ``Settings.from_env()``. ``options`` go to the front-end (for example
    ``session="aiogram"`` to keep aiogram's own HTTP session).
    """
    settings = settings or Settings.from_env()
    obj = load_target(target) if isinstance(target, str) else target
    fe = frontend_for(obj, token=token, api_url=api_url, **options)
    if fe.keys is not None and settings.keys is Settings().keys:
        settings = replace(settings, keys=fe.keys)
    if fe.allowed_updates is not None and settings.polling.allowed_updates is None:
        settings = replace(
            settings, polling=replace(settings.polling, allowed_updates=fe.allowed_updates)
        )
    return Runner(
        fe.handler,
        token=token or fe.token,
        api_url=api_url or fe.api_url or DEFAULT_API_URL,
        settings=settings,
        startup=fe.startup,
        shutdown=fe.shutdown,
        frontend=fe.name,
    )
