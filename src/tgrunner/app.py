"""Turn whatever the user's import string names into a ready :class:`~tgrunner.runner.Runner`.

The native front-end takes a :class:`~tgrunner.router.Router` or an ``async fn(update, bot)``.
"""

from __future__ import annotations

import inspect
from typing import Any

from tgrunner.errors import ConfigError
from tgrunner.loader import load_target
from tgrunner.router import Router
from tgrunner.runner import Runner
from tgrunner.settings import Settings

__all__ = ["build_runner"]


def build_runner(
    target: str | Any, *, token: str | None, api_url: str, settings: Settings
) -> Runner:
    """Load ``target`` (an import string or the object itself) and wrap it in a Runner."""
    obj = load_target(target) if isinstance(target, str) else target
    if isinstance(obj, Router) or inspect.iscoroutinefunction(obj):
        return Runner(obj, token=token, api_url=api_url, settings=settings)
    raise ConfigError(
        f"{target!r} is a {type(obj).__name__}, which tgrunner cannot run. Point it at a "
        "tgrunner Router, an 'async def handler(update, bot)', or a factory returning one."
    )
