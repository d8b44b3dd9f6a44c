"""The options of outgoing flood control: its mode, its rates and its bounds.

Nested in :class:`tgrunner.settings.Settings` as ``flood``; ``tgrunner run`` reads them from
``--flood``, ``--flood-rate``, ``--flood-max-wait``, ``--flood-replies-bulk`` and
``--flood-store`` (or ``TGRUNNER_FLOOD``, ``TGRUNNER_FLOOD_RATES``, ``TGRUNNER_FLOOD_MAX_WAIT``,
``TGRUNNER_FLOOD_REPLIES_BULK``, ``TGRUNNER_FLOOD_STORE``).

A rate is written ``N/s[:BURST]`` or ``N/min[:BURST]``: ``1/s:3`` is one call a second on
average with bursts of three, ``20/min:3`` twenty a minute; the burst defaults to 1. A list of
them names each one: ``private=1/s:3,group=20/min:3`` (:func:`parse_rates`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tgrunner.errors import ConfigError
from tgrunner.flood.buckets import Rate

__all__ = [
    "BULK",
    "GROUP",
    "MODES",
    "PAID",
    "PRIVATE",
    "RATE_NAMES",
    "STORE_SCHEMES",
    "FloodOptions",
    "check_store",
    "parse_rate",
    "parse_rates",
]

MODES = ("reactive", "telegram", "off")
"""``reactive`` (default): honour 429s, pace broadcasts; ``telegram``: also token buckets at
Telegram's limits; ``off``: nothing."""

RATE_NAMES = ("private", "group", "bulk", "paid")
"""The rates that can be set: per private chat, per group or channel, broadcasts, paid
broadcasts."""

STORE_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")
"""The URL schemes of ``--flood-store``: Valkey/Redis, plain, over TLS or a Unix socket (the
Redis schemes of :data:`tgrunner.flood.shared.SCHEMES`)."""

_RATE = re.compile(
    r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*(s|sec|min)\s*(?::\s*(\S+))?\s*"
)
_EXAMPLE = "such as 1/s:3 or 20/min:3"

PRIVATE = Rate(1.0, 3)
"""The default ``private`` rate: 1 call a second into a private chat, bursts of 3."""
GROUP = Rate(20 / 60, 3)
"""The default ``group`` rate: 20 calls a minute into a group or channel, bursts of 3."""
BULK = Rate(30.0, 30)
"""The default ``bulk`` rate: 30 broadcast calls a second, bursts of 30."""
PAID = Rate(1000.0, 1000)
"""The default ``paid`` rate: 1000 paid broadcast calls a second, bursts of 1000."""


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def parse_rate(text: str) -> Rate:
    """``N/s[:BURST]`` or ``N/min[:BURST]`` as a :class:`~tgrunner.flood.buckets.Rate` (burst 1
    when not given); ValueError saying what is wrong, in words that follow the quoted value."""
    raw = text.strip()
    if raw.startswith("-"):
        raise ValueError(f"is a negative rate: give calls per second or minute above 0, {_EXAMPLE}")
    found = _RATE.fullmatch(raw)
    if found is None:
        raise ValueError(f"is not a rate N/s[:BURST] or N/min[:BURST], {_EXAMPLE}")
    number, unit, burst_text = found.groups()
    count = float(number)
    if not math.isfinite(count) or count <= 0:
        raise ValueError(f"is a rate of 0: give calls per second or minute above 0, {_EXAMPLE}")
    burst = 1
    if burst_text is not None:
        if not burst_text.isdigit() or int(burst_text) < 1:
            raise ValueError(
                f"has a burst of {burst_text}: a burst is a whole number of calls, 1 or more"
            )
        burst = int(burst_text)
    return Rate.per_minute(count, burst) if unit == "min" else Rate(count, burst)


def parse_rates(text: str) -> dict[str, Rate]:
    """``NAME=RATE`` items separated by commas (``private=1/s:3,group=20/min:3``), by name;
    NAME is one of :data:`RATE_NAMES`. ValueError on an unknown name or a bad rate."""
    rates: dict[str, Rate] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        name, sep, rate = item.partition("=")
        name = name.strip()
        if not sep:
            what = "is" if item == text.strip() else f"has {item!r}, which is"
            raise ValueError(
                f"{what} not NAME=RATE (NAME one of {', '.join(RATE_NAMES)}), such as private=1/s:3"
            )
        if name not in RATE_NAMES:
            raise ValueError(
                f"names the flood rate {name!r}, which does not exist; the rates: "
                f"{', '.join(RATE_NAMES)}"
            )
        try:
            rates[name] = parse_rate(rate)
        except ValueError as exc:
            raise ValueError(f"sets {name} to {rate.strip()!r}, which {exc}") from None
    if not rates:
        raise ValueError("names no rate: give NAME=RATE, such as private=1/s:3")
    return rates


def check_store(url: str) -> str:
    """``url`` when it can be a flood store's (``redis://``, ``rediss://``, ``unix://``,
    ``valkey://``, ``valkeys://``); else ValueError."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in STORE_SCHEMES or not (parts.hostname or parts.path):
        raise ValueError(
            "is not a flood store URL: give redis://HOST:PORT/DB (rediss:// over TLS, "
            "unix:///PATH for a socket; valkey:// works too)"
        )
    return url.strip()


def _rate_text(rate: Rate) -> str:
    per_minute = rate.per_second * 60
    if rate.per_second < 1 and abs(per_minute - round(per_minute)) < 1e-9:
        return f"{round(per_minute)}/min:{rate.burst}"
    return f"{rate.per_second:g}/s:{rate.burst}"


@dataclass(frozen=True, slots=True)
class FloodOptions:
    """How outgoing calls are paced and retried (see :mod:`tgrunner.flood.limiter`).

    - ``mode``: ``"reactive"`` (default): a 429 pauses only the chat it names, whose calls
      wait in order and are resent after ``retry_after``; broadcasts are paced at ``bulk``;
      nothing else is delayed. ``"telegram"``: also token buckets at the rates below, so that
      429s are not hit at all. ``"off"``: no flood handling; a 429 reaches the caller.
    - ``private``: per private chat in ``telegram`` mode, default 1/s with bursts of 3.
    - ``group``: per group, supergroup or channel in ``telegram`` mode, default 20/min, bursts
      of 3.
    - ``bulk``: broadcasts (``bot.request(..., bulk=True)``), in every mode but ``off``,
      default 30/s with bursts of 30.
    - ``paid``: paid broadcasts (``allow_paid_broadcast``, ``paid=True``), default 1000/s with
      bursts of 1000.
    - ``max_wait``: seconds a call may wait to leave, default 60; one that would wait longer
      fails at once with :class:`~tgrunner.errors.FloodLimited`.
    - ``max_queue``: calls of one chat that may wait at once, default 1000; past it a call
      fails with FloodLimited.
    - ``replies_count_against_bulk``: replies also take slots of the ``bulk`` bucket (they
      never wait for it; broadcasts slow down instead), default False: Telegram's 30/s is
      about bulk notifications.
    - ``store``: ``redis://…`` to share every bucket and pause with other machines, default
      None: buckets in this process (the global ones shared by worker processes).
    - ``retries``: resends after a 5xx or a request that provably never left, default 3,
      after ``backoff`` seconds (default 0.5), doubled each time up to ``max_backoff``
      (default 8), each drawn between half and all of it.
    - ``margin``: seconds taken off every bucket's burst allowance, default 0.05. Calls leave
      on schedule, but take a varying time to reach Telegram, which counts them as they
      arrive: a call that is quicker than the one before it would arrive too early. The
      sustained rate is the same; a burst of the last few calls is spread over the margin.
    """

    mode: str = "reactive"
    private: Rate = PRIVATE
    group: Rate = GROUP
    bulk: Rate = BULK
    paid: Rate = PAID
    max_wait: float = 60.0
    max_queue: int = 1000
    replies_count_against_bulk: bool = False
    store: str | None = None
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    margin: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"flood mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for name in RATE_NAMES:
            if not isinstance(getattr(self, name), Rate):
                raise ConfigError(
                    f"the flood rate {name} must be a tgrunner.flood.Rate, not "
                    f"{getattr(self, name)!r}"
                )
        if not (isinstance(self.max_wait, int | float) and 0 < self.max_wait < math.inf):
            raise ConfigError(
                f"flood max_wait must be a number of seconds above 0, not {self.max_wait!r}"
            )
        if (
            isinstance(self.max_queue, bool)
            or not isinstance(self.max_queue, int)
            or self.max_queue < 1
        ):
            raise ConfigError(
                f"flood max_queue must be a whole number, 1 or more, not {self.max_queue!r}"
            )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(
                f"flood retries must be a whole number, 0 or more, not {self.retries!r}"
            )
        if not 0 <= self.backoff <= self.max_backoff < math.inf:
            raise ConfigError(
                f"flood backoff ({self.backoff}) and max_backoff ({self.max_backoff}) must be "
                "seconds with 0 <= backoff <= max_backoff"
            )
        if not (isinstance(self.margin, int | float) and 0 <= self.margin < math.inf):
            raise ConfigError(f"flood margin must be seconds, 0 or more, not {self.margin!r}")
        if self.store is not None:
            try:
                check_store(self.store)
            except ValueError as exc:
                raise ConfigError(f"flood store {self.store!r} {exc}") from None
            if self.mode == "off":
                raise ConfigError(
                    "a flood store (--flood-store) is set with flood mode off (--flood off), "
                    "which uses none: drop the store, or choose reactive or telegram"
                )

    @property
    def enabled(self) -> bool:
        """False in ``off`` mode."""
        return self.mode != "off"

    def with_rates(self, rates: Mapping[str, Rate]) -> FloodOptions:
        """These options with the rates named in ``rates`` replaced."""
        unknown = set(rates) - set(RATE_NAMES)
        if unknown:
            raise ConfigError(
                f"unknown flood rate {sorted(unknown)[0]!r}; the rates: {', '.join(RATE_NAMES)}"
            )
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(rates)
        return FloodOptions(**values)

    def to_json(self) -> dict[str, object]:
        """These options as JSON values (a rate as ``[per_second, burst]``), for a worker
        process; :meth:`from_json` reads them back."""
        values: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            values[name] = [value.per_second, value.burst] if isinstance(value, Rate) else value
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, object]) -> FloodOptions:
        """The options :meth:`to_json` gave."""
        given: dict[str, Any] = dict(values)
        for name in RATE_NAMES:
            if name in given:
                speed, burst = given[name]
                given[name] = Rate(speed, burst)
        return cls(**given)

    def describe(self) -> str:
        """One line for logs: the mode and what it paces, e.g. ``telegram (private 1/s:3,
        group 20/min:3, bulk 30/s:30)``."""
        if self.mode == "off":
            return "off"
        rates = [f"bulk {_rate_text(self.bulk)}"]
        if self.mode == "telegram":
            rates[:0] = [f"private {_rate_text(self.private)}", f"group {_rate_text(self.group)}"]
        store = f", shared in {urlsplit(self.store).hostname}" if self.store else ""
        return f"{self.mode} ({', '.join(rates)}{store})"
