"""What flood control reads of a call: its chat, whether Telegram's limits count it, and the
answer it got (a 429's ``retry_after``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import orjson

from tgrunner.flood.buckets import Rate

__all__ = ["A", "Answer", "Exchange", "chat_key", "is_counted", "margined", "retry_after_of"]


class Answer(Protocol):
    """What flood control reads of an HTTP response (a
    :class:`tgrunner.protocols.Response`, or a transport's own)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> bytes: ...


A = TypeVar("A", bound=Answer)

Exchange = Callable[[], Awaitable[A]]
"""One HTTP exchange of a call: a function of no arguments; each call sends the request."""

_COUNTED_PREFIXES = ("send", "copymessage", "forwardmessage")
_counted: dict[str, bool] = {}


def is_counted(method: str) -> bool:
    """True for the methods Telegram's message limits count: ``send*`` (but
    ``sendChatAction``), ``copyMessage(s)``, ``forwardMessage(s)``; any case."""
    known = _counted.get(method)
    if known is None:
        low = method.lower()
        known = low.startswith(_COUNTED_PREFIXES) and low != "sendchataction"
        if len(_counted) < 1024:
            _counted[method] = known
    return known


def chat_key(chat_id: object) -> int | str:
    """The key of a chat: its id as an int (``"-100123"`` too), or ``@username`` lower-cased."""
    if type(chat_id) is int:
        return chat_id
    text = str(chat_id).strip()
    try:
        return int(text)
    except ValueError:
        return text.lower()


def retry_after_of(answer: Answer) -> float:
    """Seconds a 429 asks to wait: its ``parameters.retry_after``, else its Retry-After
    header, else 1."""
    value: object = None
    try:
        payload = orjson.loads(answer.body)
        value = payload["parameters"]["retry_after"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        value = answer.headers.get("retry-after")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1.0
    return seconds if 0.0 <= seconds < 1e7 else 1.0


@dataclass(frozen=True, slots=True)
class _Margined(Rate):
    """A rate whose burst allowance is ``margin`` seconds short (see FloodOptions.margin)."""

    margin: float = 0.0

    @property
    def tolerance(self) -> float:
        return max(0.0, (self.burst - 1) / self.per_second - self.margin)


def margined(rate: Rate, margin: float) -> Rate:
    """``rate`` with ``margin`` seconds off its burst allowance (its tolerance); the same rate
    when ``margin`` is 0."""
    return _Margined(rate.per_second, rate.burst, margin) if margin else rate
