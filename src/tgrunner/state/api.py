"""What a state backend is, and what every backend shares: options, JSON encoding, retries.

- :class:`Backend` and :class:`Session` are what a backend implements; the
  :class:`~tgrunner.state.store.Store` puts the API on top.
- :class:`StoreOptions` are the store's options, from a URL's query or keyword arguments.
- :func:`encode` refuses what is not JSON; :func:`retrying` retries a :class:`Retry`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

import orjson

from tgrunner.errors import ConfigError, StateConflict

__all__ = [
    "MAX_KEY_BYTES",
    "Backend",
    "Retry",
    "Session",
    "StoreOptions",
    "Write",
    "backoff",
    "decode",
    "encode",
    "retrying",
]

log = logging.getLogger("tgrunner.state")

T = TypeVar("T")

MAX_KEY_BYTES = 512
"""The longest key, in UTF-8 bytes, on every backend (MySQL indexes keys up to this length)."""

Write = tuple[bytes | None, float | None]
"""One buffered write: the encoded value (None: delete) and its TTL in seconds (None: none)."""

# Values read back as they were set: a datetime or a dataclass would come back as a str or a
# dict, so they are refused rather than changed on the way.
_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How a store behaves; each may be given in the URL's query (``?retries=3``).

    - ``retries``: deadlock and serialization retries of one transaction, with jittered
      backoff, before :class:`StateConflict` (default 8).
    - ``lock_timeout``: seconds a transaction waits for its keys before
      :class:`StateConflict` (default 30).
    - ``connect_timeout``: seconds to reach a server before :class:`StateUnavailable`
      (default 10).
    - ``pool_size``: connections per process to a SQL server (default 10); a transaction holds
      one from its first read to its commit.
    - ``purge_interval``: seconds between sweeps of expired and deleted values (default 60;
      0: no sweeps, call :meth:`Store.purge`).
    - ``lease``: Redis lock lease in seconds, renewed while held (default 3); the lock of a
      killed process is free within it.
    - ``table``: the SQL table (default ``tgrunner_state``).
    - ``prefix``: the Redis key prefix (default ``tgrunner:state:``).
    - ``synchronous``: SQLite's ``synchronous`` pragma, ``normal`` or ``full`` (default
      ``normal``: a killed process loses nothing; a power cut may lose the last commits).
    """

    retries: int = 8
    lock_timeout: float = 30.0
    connect_timeout: float = 10.0
    pool_size: int = 10
    purge_interval: float = 60.0
    lease: float = 3.0
    table: str = "tgrunner_state"
    prefix: str = "tgrunner:state:"
    synchronous: str = "normal"
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_query(cls, query: dict[str, str], *, allow_extra: bool) -> StoreOptions:
        """Options from a URL's query; keys that are no option go to ``extra`` (for the
        driver) when ``allow_extra``, else they are refused with ConfigError."""
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        extra: dict[str, str] = {}
        for name, text in query.items():
            spec = known.get(name)
            if spec is None:
                if not allow_extra:
                    raise ConfigError(
                        f"state URL: unknown option {name!r}; the options are "
                        f"{', '.join(sorted(known))}"
                    )
                extra[name] = text
                continue
            kind = {"int": int, "float": float}.get(str(spec.type), str)
            try:
                values[name] = kind(text)
            except ValueError:
                raise ConfigError(f"state URL: {name}={text!r} is not a {kind.__name__}") from None
        options = cls(**values, extra=extra)
        options.validate()
        return options

    def validate(self) -> None:
        """ConfigError unless every option is in range."""
        if self.retries < 0 or self.pool_size < 1:
            raise ConfigError("state store: retries must be >= 0 and pool_size >= 1")
        if min(self.lock_timeout, self.connect_timeout, self.lease) <= 0 or self.purge_interval < 0:
            raise ConfigError(
                "state store: lock_timeout, connect_timeout and lease must be > 0, "
                "purge_interval >= 0"
            )
        if self.synchronous not in ("normal", "full"):
            raise ConfigError("state store: synchronous is 'normal' or 'full'")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", self.table):
            raise ConfigError(
                f"state store: table {self.table!r} must be letters, digits and _ (from a letter)"
            )


class Retry(Exception):
    """Raised by a backend for a deadlock or serialization error that is safe to retry
    (nothing was written, no lock is held)."""


class Session(Protocol):
    """One transaction's locks on a backend, with the values read under them."""

    values: dict[str, bytes]
    """The keys that hold a value, and their encoded values."""

    async def commit(self, writes: dict[str, Write]) -> None:
        """Write ``writes`` (may be empty) atomically, all or nothing, and let go of the
        locks; StateConflict when the locks were lost meanwhile (nothing written)."""
        ...

    async def abort(self) -> None:
        """Let go of the locks, writing nothing; safe after a failed commit."""
        ...


class Backend(Protocol):
    """Where values live. ``url`` is shown in messages (password hidden); ``identity`` names
    the data, so that stores on the same data in one process share their key queues."""

    url: str
    identity: str

    async def open(self) -> None:
        """Connect and create what is missing; StateUnavailable when it cannot."""
        ...

    async def close(self) -> None:
        """Let go of connections and files."""
        ...

    async def lock(self, keys: Sequence[str]) -> Session:
        """Lock ``keys`` (sorted, unique) across processes and read them. Retry for a
        retryable conflict; StateConflict past ``lock_timeout``; StateUnavailable."""
        ...

    async def read(self, key: str) -> bytes | None:
        """The committed value of ``key`` (no lock), None when absent or expired."""
        ...

    async def purge(self) -> int:
        """Remove some expired and deleted values; how many."""
        ...


def encode(key: str, value: Any) -> bytes:
    """``value`` as JSON bytes; TypeError, naming ``key``, when it is not JSON."""
    try:
        return orjson.dumps(value, default=_not_json, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(
            f"the value for state key {key!r} is not JSON ({exc}): store dicts with str keys, "
            "lists, str, int, float, bool or None (a datetime as an ISO string)"
        ) from None


def _not_json(value: Any) -> Any:
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def decode(raw: bytes) -> Any:
    """A value from its JSON bytes."""
    return orjson.loads(raw)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): full jitter, 5 ms doubling up to
    200 ms, so that the transactions that collided do not collide again in step."""
    return random.uniform(0, min(0.2, 0.005 * 2**attempt))


async def retrying(call: Callable[[], Awaitable[T]], retries: int, what: str) -> T:
    """``await call()``, again after each :class:`Retry` it raises, at most ``retries`` more
    times with :func:`backoff`; then StateConflict naming ``what``."""
    for attempt in range(retries + 1):
        try:
            return await call()
        except Retry as exc:
            last = exc
            log.debug("state: %s: %s, retry %d", what, exc, attempt + 1)
        if attempt < retries:
            await asyncio.sleep(backoff(attempt))
    raise StateConflict(f"{what}: still conflicting after {retries} retries ({last})") from last
