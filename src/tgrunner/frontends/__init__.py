"""Front-ends: how a bot written for some framework is driven by the runtime.

A front-end turns the user's object (a tgrunner Router, an aiogram ``Dispatcher``, a PTB
``Application``) into a :class:`Frontend`: one handler per update plus what the runtime must
know to poll for it.

Framework adapters are found by name: :data:`ADAPTERS` maps the top-level package of the
user's object (``"aiogram"``, ``"telegram"``) to the import string of its adapter, which is
imported (with the framework) only when such an object is run. This package imports no
adapter and nothing of the runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tgrunner.keys import KeyFunc

if TYPE_CHECKING:
    from tgrunner.client.bot import Bot

__all__ = ["ADAPTERS", "Frontend", "detect"]

UpdateHandler = Callable[[dict[str, Any], "Bot"], Awaitable[Any]]


@dataclass(slots=True)
class Frontend:
    """What the runtime needs to drive a bot.

    - ``handler(update, bot)``: handles one update (a dict as Telegram sent it).
    - ``token`` / ``api_url``: taken from the framework's own bot when it has one (None: use
      what the caller gave).
    - ``keys``: the ordering keys this framework needs (None: the settings' default).
    - ``allowed_updates``: the kinds the bot handles (None: Telegram's setting).
    - ``startup`` / ``shutdown``: awaited once before the first fetch / after the last update.
    - ``name``: the front-end's name in the start-up line: ``"native"`` (default),
      ``"aiogram"`` or ``"ptb"``.
    """

    handler: UpdateHandler
    token: str | None = None
    api_url: str | None = None
    keys: KeyFunc | None = None
    allowed_updates: tuple[str, ...] | None = None
    startup: Callable[[], Awaitable[Any]] | None = None
    shutdown: Callable[[], Awaitable[Any]] | None = None
    name: str = "native"


ADAPTERS: Mapping[str, str] = {
    "aiogram": "tgrunner.frontends.aiogram.adapter:adapt",
    "telegram": "tgrunner.frontends.ptb.adapter:adapt",
}
"""The adapter for objects of each framework, by the framework's top-level package name; each
is ``module:function``, called as ``adapt(obj, **options)`` and returning a :class:`Frontend`."""


def detect(obj: Any, **options: Any) -> Frontend | None:
    """The front-end for ``obj``, or None when no front-end recognises it.

    The adapter is chosen from :data:`ADAPTERS` by the top-level package of ``obj``'s class
    (of its first item when ``obj`` is a tuple, such as a factory's ``(dispatcher, bot)``) and
    imported only then. ``options`` always carry ``token`` and ``api_url`` (None when not
    given): the adapter makes the framework's own bot talk to that server with that token when
    they are set.
    """
    first = obj[0] if isinstance(obj, tuple) and obj else obj
    package = (type(first).__module__ or "").partition(".")[0]
    target = ADAPTERS.get(package)
    if target is None:
        return None
    module, _, name = target.partition(":")
    adapt: Callable[..., Frontend] = getattr(importlib.import_module(module), name)
    return adapt(obj, **options)
