"""``tgrunner.run``: run a bot from Python, given as an object or as an import string.

::

    tgrunner.run(router, token=TOKEN)              # the object: this process runs it
    tgrunner.run("mybot:dp", workers=4)            # the import string: as 'tgrunner run'

This module sits above :mod:`.runner` and :mod:`.build`, so that neither imports the other's
way of starting a bot.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from tgrunner.errors import ConfigError
from tgrunner.executors.inline import UpdateHandler
from tgrunner.executors.processes import resolve_workers
from tgrunner.frontends.native.router import Router
from tgrunner.runtime.build import build_launcher
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings

__all__ = ["run"]


def run(
    target: UpdateHandler | str,
    *,
    token: str | None = None,
    workers: int | str | None = None,
    **kwargs: Any,
) -> int:
    """Run a bot until SIGINT/SIGTERM; return the exit code (0 after a clean stop).

    - ``target``: a handler object (a :class:`~tgrunner.Router`, an ``async fn(update,
      bot)``), run by a :class:`Runner` with ``kwargs``; or an import string
      (``"mybot:dp"``, ``"mybot:application"``, ``"mybot:main"``) loaded by the rules of
      ``tgrunner run``, with ``kwargs`` for :func:`~tgrunner.runtime.build.build_launcher`
      (``api_url``, ``settings``, ``factory``, front-end options).
    - ``token``: default ``TGRUNNER_TOKEN`` or ``BOT_TOKEN`` from the environment.
    - ``workers``: worker processes (a count, or ``"auto"``: the CPUs this process may use);
      default: the settings' (``TGRUNNER_WORKERS``, else 1: no worker processes). More than
      one needs an import string, which each worker loads.
    - ``settings`` (in ``kwargs``): default ``Settings.from_env()``.
    """
    token = token or os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    settings: Settings = kwargs.pop("settings", None) or Settings.from_env()
    if workers is not None:
        count = resolve_workers(workers)
        settings = replace(settings, workers=replace(settings.workers, workers=count))
    if isinstance(target, str):
        return build_launcher(target, token=token, settings=settings, **kwargs).run()
    if settings.workers.workers > 1:
        raise ConfigError(
            "Worker processes load the bot from its import string: pass 'module:attr' "
            '(tgrunner.run("mybot:router", workers=4)) instead of the object itself'
        )
    keys = getattr(target, "keys", None) if isinstance(target, Router) else None
    if keys is not None and settings.keys is Settings().keys:
        settings = replace(settings, keys=keys)  # the router's own, as build_runner does
    return Runner(target, token=token, settings=settings, **kwargs).run()
