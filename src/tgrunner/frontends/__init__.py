"""Front-ends: how a bot written for some framework is driven by the runtime.

A front-end turns the user's object (a tgrunner Router, an aiogram ``Dispatcher``, a PTB
``Application``) into a :class:`Frontend`: one handler per update plus what the runtime must
know to poll for it. Framework packages are imported only when their object is recognised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tgrunner.keys import KeyFunc

if TYPE_CHECKING:
    from tgrunner.client.bot import Bot

__all__ = ["Frontend", "detect"]

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
    """

    handler: UpdateHandler
    token: str | None = None
    api_url: str | None = None
    keys: KeyFunc | None = None
    allowed_updates: tuple[str, ...] | None = None
    startup: Callable[[], Awaitable[Any]] | None = None
    shutdown: Callable[[], Awaitable[Any]] | None = None


def detect(obj: Any, **options: Any) -> Frontend | None:
    """The front-end for ``obj``, or None when no front-end recognises it.

    Each framework's adapter is imported only when ``obj`` comes from that framework's package.
    ``options`` always carry ``token`` and ``api_url`` (None when not given): the adapter makes
    the framework's own bot talk to that server with that token when they are set.
    """
    # A factory may return a tuple such as (dispatcher, bot): its first item names the framework.
    first = obj[0] if isinstance(obj, tuple) and obj else obj
    module = type(first).__module__ or ""
    if module.startswith("aiogram"):
        from tgrunner.frontends.aiogram import adapt as adapt_aiogram

        return adapt_aiogram(obj, **options)
    if module.startswith("telegram"):
        from tgrunner.frontends.ptb import adapt as adapt_ptb

        return adapt_ptb(obj, **options)
    return None
