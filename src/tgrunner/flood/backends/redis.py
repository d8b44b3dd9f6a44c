"""Token buckets shared by machines, in Redis/Valkey: one Lua round trip a reservation.

::

    buckets = RedisBuckets("redis://127.0.0.1:6379/0", prefix="tgrunner:flood:123:")
    wait = await buckets.reserve("bulk", Rate(30.0, burst=30))

Each key is a hash under ``prefix`` holding the two values of
:class:`~tgrunner.flood.buckets.Bucket`, ``t`` (the theoretical arrival time) and ``p`` (the
end of a pause), in whole microseconds of the server's clock (``TIME``), so every machine
reads one clock and the hosts' clocks do not matter. One script (EVALSHA; loaded again when
the server answers NOSCRIPT, after a restart or a failover) reads them, takes the slot and
writes them back, atomically.

Microseconds, not float seconds: a Lua number turns into a string with 14 digits, and a time
of day in microseconds needs 16. The interval is rounded up and the tolerance is ``burst - 1``
of those intervals, so no window holds more than ``burst + w * per_second`` calls (at 30/s the
rounding costs 0.001 %).

A bucket's key expires when it is idle, at ``max(t, p)`` (the same as a new bucket from then
on): memory stays flat however many chats went through.

Calls made while one is on its way go together in the next pipeline: one round trip for all
of them, answered in the order they were made (at most one pipeline is out at a time), so a
busy process pays a fraction of a round trip per reservation.

When Redis cannot be reached, a call raises :class:`~tgrunner.errors.FloodStoreUnavailable`
within ``socket_connect_timeout`` (default 1 s; a refused connection at once), and for
``recheck`` seconds after that (default 1) the calls fail at once without trying, so a limiter
that falls back to its own buckets loses no time per send during an outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tgrunner._redis_url import split_query
from tgrunner.errors import ConfigError, FloodStoreUnavailable
from tgrunner.flood.buckets import Rate

__all__ = ["DEFAULT_PREFIX", "RedisBuckets"]

log = logging.getLogger("tgrunner.flood")

DEFAULT_PREFIX = "tgrunner:flood:"

_DOWN = (OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_OURS = ("prefix", "recheck")
_DEFAULTS: dict[str, Any] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 1.0,
    "max_connections": 32,
    "timeout": 1.0,  # the wait for a free connection of the pool
}
_MAX_PAUSE = 10.0**9  # seconds; a pause past it is a bug, and would not fit the µs of a Lua number

# KEYS[1]: the bucket. ARGV: 'r' (reserve) or 'p' (pause); the interval (r) or the pause (p);
# the tolerance (r); now, or '' for the server's clock. All whole µs. Answers the wait.
_SCRIPT = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local v = redis.call('HMGET', KEYS[1], 't', 'p')
local tat = tonumber(v[1]) or now
local paused = tonumber(v[2]) or now
local wait = 0
if ARGV[1] == 'r' then
  local at = tat - tonumber(ARGV[3])
  if at < now then at = now end
  if at < paused then at = paused end
  if tat < at then tat = at end
  tat = tat + tonumber(ARGV[2])
  wait = at - now
else
  local ends = now + tonumber(ARGV[2])
  if ends <= paused then return 0 end
  paused = ends
end
redis.call('HSET', KEYS[1], 't', tat, 'p', paused)
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, paused) - now) / 1000) + 1)
return wait
"""


def _join(parts: SplitResult, netloc: str, query: str) -> str:
    # By hand: urlunsplit drops the // of unix:///path (no host).
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _hidden(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)]
    return _join(parts, netloc, urlencode(query, safe="*"))


class RedisBuckets:
    """:class:`~tgrunner.protocols.SharedBuckets` in the Redis/Valkey database at ``url``
    (``redis://[:PASSWORD@]HOST:PORT/DB``, ``rediss://``, ``unix://PATH?db=N``, ``valkey://``).

    - ``prefix`` (default ``tgrunner:flood:``, or the URL's ``?prefix=``): the keys' prefix;
      give each bot its own.
    - ``?recheck=SECONDS`` (default 1): after Redis could not be reached, calls fail at once for
      this long before one tries again.
    - redis-py's own URL options, with tgrunner's defaults: ``socket_connect_timeout=1``,
      ``socket_timeout=1``, ``max_connections=32`` (a call past them waits ``timeout=1`` for a
      free one).
    - ``clock`` (default None: the server's ``TIME``): seconds on a clock of the caller's
      instead, sent with each call; every user of the keys must then share it (tests do).

    It connects at its first call. ConfigError for an unknown or bad option.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        scheme, _, rest = url.strip().partition("://")
        scheme = {"valkey": "redis", "valkeys": "rediss"}.get(scheme.lower(), scheme)
        parts = urlsplit(f"{scheme}://{rest}")
        ours, theirs = split_query(parts.query, _OURS, "--flood-store")
        target = _join(parts, parts.netloc, urlencode(theirs))
        self.url = _hidden(target)
        self.prefix = ours.get("prefix", prefix)
        try:
            self.recheck = float(ours.get("recheck", 1.0))
        except ValueError:
            self.recheck = math.nan
        if not (math.isfinite(self.recheck) and self.recheck >= 0):
            raise ConfigError(f"?recheck={ours['recheck']}: give seconds, 0 or more")
        self._clock = clock
        try:
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                target, retry=Retry(NoBackoff(), 0), **_DEFAULTS
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"--flood-store {self.url}: {exc}") from None
        self._client: Any = redis.asyncio.Redis.from_pool(pool)
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()
        self._pending: list[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._steps: dict[Rate, tuple[int, int]] = {}
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._closed = False

    def _now(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * 1e6))

    async def reserve(self, key: str, rate: Rate) -> float:
        """Take ``key``'s next slot under ``rate``: the seconds until the call may leave."""
        steps = self._steps.get(rate)
        if steps is None:
            interval = math.ceil(1e6 / rate.per_second)
            # The rate's own tolerance, so that a margined one (FloodOptions.margin) keeps its
            # margin; rounded down, like the interval up, to stay within the bound.
            tolerance = max(0, math.floor(rate.tolerance * 1e6))
            steps = self._steps[rate] = (interval, tolerance)
            if len(self._steps) > 64:  # rates come from settings: a few; never grow for ever
                self._steps = {rate: steps}
        wait = await self._call(key, ("r", steps[0], steps[1], self._now()))
        return int(wait) / 1e6

    async def pause(self, key: str, seconds: float) -> None:
        """No call on ``key`` leaves for ``seconds`` from now; a later end wins. 0 or less
        changes nothing; ValueError for NaN, infinity or more than 10⁹ s."""
        if not (math.isfinite(seconds) and seconds <= _MAX_PAUSE):
            raise ValueError(f"a pause must be a finite number of seconds, not {seconds!r}")
        if seconds > 0:
            await self._call(key, ("p", math.ceil(seconds * 1e6), 0, self._now()))

    async def _call(self, key: str, args: tuple[Any, ...]) -> Any:
        if self._closed:
            raise RuntimeError(f"the flood store {self.url} is closed")
        if self._down_since is not None and time.monotonic() < self._retry_at:
            raise FloodStoreUnavailable(
                f"the flood store {self.url} cannot be reached (down for "
                f"{time.monotonic() - self._down_since:.1f} s; tried again every "
                f"{self.recheck:g} s); check that Redis/Valkey runs there"
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((self.prefix + key, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Send what is pending, one pipeline at a time: the calls made while one is out go
        together in the next (one round trip for all), in the order they were made."""
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                answers = await self._send([(key, args) for key, args, _ in batch])
            except _DOWN as exc:
                answers = [self._unreachable(exc)] * len(batch)
            except asyncio.CancelledError:  # close(): nobody is left waiting for nothing
                for _, _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # a Redis error, or a bug: its callers get it
                answers = [exc] * len(batch)
            else:
                if self._down_since is not None:
                    log.warning(
                        "the flood store %s answers again, after %.1f s",
                        self.url, time.monotonic() - self._down_since,
                    )  # fmt: skip
                    self._down_since = None
            for (_, _, future), answer in zip(batch, answers, strict=True):
                if future.done():  # its caller was cancelled; the slot stays taken
                    continue
                if isinstance(answer, redis.exceptions.RedisError):
                    answer = FloodStoreUnavailable(
                        f"the flood store {self.url} failed: {type(answer).__name__}: {answer}"
                    )
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)

    async def _send(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Run the script once per call, loading it when the server does not know it."""
        client = self._client
        if len(calls) == 1:
            key, args = calls[0]
            try:
                return [await client.evalsha(self._sha, 1, key, *args)]
            except redis.exceptions.NoScriptError:
                self._sha = await client.script_load(_SCRIPT)
                return [await client.evalsha(self._sha, 1, key, *args)]
        pipe = client.pipeline(transaction=False)
        for key, args in calls:
            pipe.evalsha(self._sha, 1, key, *args)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        again = [i for i, a in enumerate(answers) if isinstance(a, redis.exceptions.NoScriptError)]
        if again:
            self._sha = await client.script_load(_SCRIPT)
            for i, answer in zip(again, await self._send([calls[i] for i in again]), strict=True):
                answers[i] = answer
        return answers

    def _unreachable(self, exc: BaseException) -> FloodStoreUnavailable:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "the flood store %s cannot be reached (%s: %s); its calls fail for %g s at a "
                "time until it answers",
                self.url, type(exc).__name__, exc, self.recheck,
            )  # fmt: skip
        self._retry_at = now + self.recheck
        return FloodStoreUnavailable(
            f"the flood store {self.url} cannot be reached ({type(exc).__name__}: {exc}); "
            "check that Redis/Valkey runs there and the URL is right"
        )

    async def close(self) -> None:
        """Close the connections (the keys stay, and expire when idle). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        for _, _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError(f"the flood store {self.url} is closed"))
        self._pending = []
        await self._client.aclose()
