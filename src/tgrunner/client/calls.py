"""A process-wide hook on the Bot API calls that aiogram's and PTB's own sessions send.

tgrunner's :class:`~tgrunner.client.bot.Bot` has its own ``on_call``; an aiogram or PTB bot
calls the Bot API through its framework's session, which tgrunner replaces with one on its
fast HTTP client (:mod:`tgrunner.frontends.aiogram.session`,
:mod:`tgrunner.frontends.ptb.request`). Those sessions report each call here, when a hook is
set (metrics on): ``on_call(method, status, seconds)``, the status being ``"ok"``,
``"error_<HTTP status>"`` (Telegram's error codes are its HTTP statuses) or ``"network"``, and
``seconds`` the answer's ``elapsed`` (as the transport timed the exchange), or None when no
answer came.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from tgrunner.client.transports.errors import TransportError

__all__ = ["CallHook", "on_call", "reported", "status_of"]

CallHook = Callable[[str, str, float | None], None]
"""``(method, status, seconds)``."""

on_call: CallHook | None = None
"""The hook, default None (nothing reported). One runtime per process sets it."""


def status_of(http_status: int) -> str:
    """The metrics status of an answer with this HTTP status: ``ok`` or ``error_<status>``."""
    return "ok" if http_status == 200 else f"error_{http_status}"


class _Answer(Protocol):
    status: int
    elapsed: float


A = TypeVar("A", bound=_Answer)


async def reported(method: str, call: Awaitable[A]) -> A:
    """Await ``call``, one HTTP request of Bot API ``method``, and report it to
    :data:`on_call`: its answer's status, or ``"network"`` when no answer came. Await the call
    itself when no hook is set (this adds a frame)."""
    try:
        answer = await call
    except (TransportError, OSError):
        if on_call is not None:
            on_call(method, "network", None)
        raise
    if on_call is not None:
        on_call(method, status_of(answer.status), answer.elapsed)
    return answer
