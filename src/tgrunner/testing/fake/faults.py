"""Flood limits and fault injection for FakeTelegram: all off unless asked for.

:class:`FloodLimits` makes the fake answer ``429 Too Many Requests: retry after N`` (with
``parameters.retry_after`` and a ``Retry-After`` header) when a bot sends faster than the limits
Telegram documents; :class:`Faults` adds latency, 5xx answers, connection resets and answers
that are not the Bot API's (``answer``). Both are
frozen options; FakeTelegram builds a :class:`Injector` from them and rebuilds it when a test
assigns new options at runtime (``tg.flood = FloodLimits(...)``, ``tg.faults = None``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tgrunner.testing.fake.base import ApiError

__all__ = ["Decision", "Faults", "FloodLimits", "Injector", "is_send_method"]

# Methods that put a message into a chat count against flood limits. sendChatAction has its own,
# much laxer, limit in Telegram and is left out.
_SEND_PREFIXES = ("send", "copymessage", "forwardmessage")
_NOT_COUNTED = frozenset({"sendchataction"})


def is_send_method(method: str) -> bool:
    """True for the methods flood limits count (``sendMessage``, ``copyMessage``, …)."""
    low = method.lower()
    return low.startswith(_SEND_PREFIXES) and low not in _NOT_COUNTED


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """Telegram's documented send limits, as token buckets. Each ``None`` limit is off.

    - ``per_chat_per_second`` (default None): messages per second into any one chat; a private
      chat may burst up to ``private_burst`` (default 3) messages, other chats 1.
    - ``per_group_per_minute`` (default None): messages per minute into one group, supergroup or
      channel (Telegram says 20), with a burst of that many.
    - ``global_per_second`` (default None): messages per second over all chats (Telegram says
      30), with a burst of that many.
    """

    per_chat_per_second: float | None = None
    private_burst: int = 3
    per_group_per_minute: float | None = None
    global_per_second: float | None = None

    def __post_init__(self) -> None:
        for name in ("per_chat_per_second", "per_group_per_minute", "global_per_second"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"FloodLimits.{name} must be positive or None, not {value!r}")
        if self.private_burst < 1:
            raise ValueError(f"FloodLimits.private_burst must be ≥ 1, not {self.private_burst}")


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour to inject into every answer (or only those of ``methods``).

    - ``latency`` (default None): seconds to wait before answering; a number, or a callable
      given the method name that returns one (draw from any distribution there).
    - ``error_rate`` (default 0.0): the share of requests answered ``500 Internal Server
      Error`` or ``502 Bad Gateway`` without running the method.
    - ``reset_rate`` (default 0.0): the share of requests whose connection is reset instead of
      answered (the method does not run).
    - ``flood_rate`` (default 0.0): the share of requests answered ``429 Too Many Requests``
      with ``parameters.retry_after`` = ``retry_after`` (default 1 second), whatever the method.
    - ``flood_chats`` (default None: none): chat ids (ints) into which every counted send
      (:func:`is_send_method`) is answered ``429 Too Many Requests`` with
      ``parameters.retry_after`` = ``retry_after``, every time, while these faults are in force:
      a 429 storm on a few chats. Sends into other chats, and other methods, are not touched;
      ``methods`` narrows it further.
    - ``answer`` (default None): raw bytes to answer every request with (status 200, JSON),
      instead of running the method: a server or proxy that is not the Bot API, such as
      ``b'{"ok":true,"result":[1,2]}'`` for ``getUpdates`` or ``b'[]'``. It takes precedence
      over the rates above; combine it with ``methods``.
    - ``methods`` (default None: all): method names, any case, the faults apply to.
    - ``seed`` (default 0): seeds the draws, so a run is repeatable.
    """

    latency: float | Callable[[str], float] | None = None
    error_rate: float = 0.0
    reset_rate: float = 0.0
    flood_rate: float = 0.0
    retry_after: int = 1
    answer: bytes | None = None
    methods: frozenset[str] | None = None
    seed: int = 0
    flood_chats: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.flood_chats is not None:
            chats = self.flood_chats
            if isinstance(chats, str | bytes) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in chats
            ):
                raise ValueError(f"Faults.flood_chats must be chat ids (ints), not {chats!r}")
            object.__setattr__(self, "flood_chats", frozenset(chats))
        if self.retry_after < 1:
            raise ValueError(f"Faults.retry_after must be ≥ 1 second, not {self.retry_after!r}")
        for name in ("error_rate", "reset_rate", "flood_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be within [0, 1], not {value!r}")
        if isinstance(self.latency, int | float) and self.latency < 0:
            raise ValueError(f"Faults.latency must not be negative, not {self.latency!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: wait ``latency``, then reset, fail with ``error``, answer
    the raw bytes ``answer``, or run."""

    latency: float = 0.0
    error: ApiError | None = None
    reset: bool = False
    answer: bytes | None = None


_RUN = Decision()


class _Bucket:
    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now

    def wait(self, now: float) -> float:
        """Seconds until a token is free (0.0 means one is free now; nothing is taken)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Injector:
    """Applies one :class:`FloodLimits` and one :class:`Faults` to a stream of requests.

    ``clock`` (default ``time.monotonic``) drives the buckets.
    """

    def __init__(
        self,
        flood: FloodLimits | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flood = flood
        self.faults = faults
        self.clock = clock
        self._rng = random.Random(faults.seed if faults else 0)
        self._methods = (
            frozenset(m.lower() for m in faults.methods) if faults and faults.methods else None
        )
        self._storm: frozenset[int] = (
            faults.flood_chats if faults and faults.flood_chats else frozenset()
        )
        # True when sends are checked per chat (check_flood), by limits or by a storm.
        self.by_chat = flood is not None or bool(self._storm)
        self._chats: dict[int, _Bucket] = {}
        self._groups: dict[int, _Bucket] = {}
        self._global: _Bucket | None = None
        if flood is not None and flood.global_per_second is not None:
            rate = flood.global_per_second
            self._global = _Bucket(rate, max(1.0, rate), clock())

    @property
    def active(self) -> bool:
        return self.flood is not None or self.faults is not None

    def decide(self, method: str) -> Decision:
        """Draw this request's fate from ``faults``; the common case returns a shared value."""
        faults = self.faults
        if faults is None or (self._methods is not None and method.lower() not in self._methods):
            return _RUN
        latency = faults.latency
        delay = 0.0
        if latency is not None:
            delay = float(latency(method) if callable(latency) else latency)
        if faults.answer is not None:
            return Decision(delay, answer=faults.answer)
        roll = self._rng.random()
        if roll < faults.reset_rate:
            return Decision(delay, None, True)
        if roll < faults.reset_rate + faults.error_rate:
            if self._rng.random() < 0.5:
                return Decision(delay, ApiError(500, "Internal Server Error"))
            return Decision(delay, ApiError(502, "Bad Gateway"))
        if roll < faults.reset_rate + faults.error_rate + faults.flood_rate:
            wait = faults.retry_after
            flood = ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
            return Decision(delay, flood)
        return Decision(delay) if delay else _RUN

    def check_flood(self, method: str, chat_id: Any, chat_type: str | None) -> ApiError | None:
        """Take a token from every bucket a send into ``chat_id`` uses, or explain the 429.

        ``chat_type`` is the chat's type when known; otherwise a negative id counts as a group.
        A chat of ``Faults.flood_chats`` gets its 429 without taking a token.
        """
        if not self.by_chat or not is_send_method(method):
            return None
        try:
            key = int(chat_id)
        except (TypeError, ValueError):
            key = hash(chat_id)
        if key in self._storm and (self._methods is None or method.lower() in self._methods):
            assert self.faults is not None  # a storm comes from faults
            storm = self.faults.retry_after
            return ApiError(429, f"Too Many Requests: retry after {storm}", {"retry_after": storm})
        flood = self.flood
        if flood is None:
            return None
        now = self.clock()
        private = chat_type == "private" if chat_type is not None else key > 0
        buckets: list[_Bucket] = []
        if self._global is not None:
            buckets.append(self._global)
        if flood.per_chat_per_second is not None:
            bucket = self._chats.get(key)
            if bucket is None:
                burst = flood.private_burst if private else 1
                bucket = self._chats[key] = _Bucket(flood.per_chat_per_second, burst, now)
            buckets.append(bucket)
        if not private and flood.per_group_per_minute is not None:
            bucket = self._groups.get(key)
            if bucket is None:
                per_minute = flood.per_group_per_minute
                bucket = self._groups[key] = _Bucket(per_minute / 60.0, max(1.0, per_minute), now)
            buckets.append(bucket)
        wait = max((b.wait(now) for b in buckets), default=0.0)
        if wait > 0.0:
            retry_after = max(1, math.ceil(wait))
            return ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        for b in buckets:
            b.tokens -= 1.0
        return None
