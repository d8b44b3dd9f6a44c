"""The Redis/Valkey backend (redis-py asyncio): many processes on many machines.

Locks, not WATCH/MULTI: an optimistic transaction finds its conflict at EXEC, after the
``async with`` block has run, and a block cannot be run again. So each key has a lock, a key
holding its owner's random token with a lease (``lease``, default 3 s):

- One Lua script takes the keys' locks in sorted order and, once it has them all, reads the
  values, atomically; a lock held by another stops it there, keeping the ones it took (sorted
  order: no deadlock) and answering how long that lock has left.
- The waiter sleeps until the holder lets go: the commit script publishes each released key
  on one channel, which every process of the store subscribes to; the waiter's future is
  registered before it asks, so no release is missed (handoff, not polling). If the release
  message is lost, the lock's remaining lease bounds the wait.
- While held, locks are renewed every ``lease / 3``. A killed process stops renewing, so its
  locks are free within ``lease``.
- The commit script is the fence: it writes only if every lock still holds this transaction's
  token, so a transaction whose lease ran out (a process stalled past it) writes nothing and
  gets StateConflict. It leaves a marker, so a commit resent after a lost answer is known.

Needs one Redis primary (not Cluster: a script touches keys of many slots).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import NoBackoff

from tgrunner.errors import StateConflict, StateUnavailable
from tgrunner.state.api import StoreOptions, Write, backoff
from tgrunner.state.registry import safe_url

__all__ = ["RedisBackend"]

log = logging.getLogger("tgrunner.state")

_DOWN = (OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_FAILED = (*_DOWN, redis.exceptions.RedisError)

# KEYS: n lock keys, then n value keys. ARGV: token, lease ms, n.
_ACQUIRE = """
local n = tonumber(ARGV[3])
for i = 1, n do
  local owner = redis.call('GET', KEYS[i])
  if not owner then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
  elseif owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  else
    return {i, redis.call('PTTL', KEYS[i])}
  end
end
local out = {0, 0}
for i = 1, n do out[i + 2] = redis.call('GET', KEYS[n + i]) end
return out
"""

# KEYS: n lock keys, m value keys, the marker. ARGV: token, n, m, channel, then per write
# op ('s' set, 'x' set with a TTL, 'd' delete), value, TTL ms. 1: done, 2: done before, 0: lost.
_COMMIT = """
local token, n, m = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local marker = KEYS[n + m + 1]
if redis.call('EXISTS', marker) == 1 then return 2 end
for i = 1, n do
  if redis.call('GET', KEYS[i]) ~= token then return 0 end
end
for j = 1, m do
  local key, op = KEYS[n + j], ARGV[2 + 3 * j]
  if op == 'd' then
    redis.call('DEL', key)
  elseif op == 'x' then
    redis.call('SET', key, ARGV[3 + 3 * j], 'PX', ARGV[4 + 3 * j])
  else
    redis.call('SET', key, ARGV[3 + 3 * j])
  end
end
if m > 0 then redis.call('SET', marker, '1', 'PX', 10000) end
for i = 1, n do
  redis.call('DEL', KEYS[i])
  redis.call('PUBLISH', ARGV[4], KEYS[i])
end
return 1
"""

# KEYS: lock keys. ARGV: token, channel. Lets go of those still ours.
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    redis.call('PUBLISH', ARGV[2], KEYS[i])
  end
end
return 0
"""

# KEYS: lock keys. ARGV: token, lease ms. How many are not ours (any: the lease ran out).
_RENEW = """
local lost = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  else
    lost = lost + 1
  end
end
return lost
"""


class RedisBackend:
    """Values under ``options.prefix`` in the Redis/Valkey database at a ``redis://`` URL."""

    def __init__(self, url: str, options: StoreOptions) -> None:
        scheme, _, rest = url.partition("://")
        scheme = {"valkey": "redis", "valkeys": "rediss"}.get(scheme.lower(), scheme)
        self._target = f"{scheme}://{rest}"
        self.url = safe_url(url)
        self.options = options
        self.prefix = options.prefix
        self.identity = f"{self.url}#{self.prefix}"
        self.channel = f"{self.prefix}released"
        self.lease_ms = max(1, round(options.lease * 1000))
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._waiters: dict[bytes, set[asyncio.Future[None]]] = {}
        self._sessions: set[_Session] = set()
        self._busy = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _down(self, exc: BaseException, what: str) -> StateUnavailable:
        return StateUnavailable(f"the state store {self.url}: {what} failed: {exc}")

    async def open(self) -> None:
        # A blocking pool: past its size a call waits for a free connection (up to the
        # connect timeout) instead of failing at once, as redis-py's default pool does past
        # 100 connections (many transactions at once, each renewing its lease). Its size is
        # the URL's max_connections, else 50.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self._target,
            retry=RedisRetry(NoBackoff(), 0),  # resends are decided here (see commit)
            socket_connect_timeout=self.options.connect_timeout,
            timeout=self.options.lock_timeout,
        )
        self._client = redis.asyncio.Redis.from_pool(pool)  # closes the pool with it
        try:
            await self._client.ping()
        except _FAILED as exc:
            await self.close()
            raise StateUnavailable(f"cannot open the state store {self.url}: {exc}") from exc
        for name, text in (
            ("acquire", _ACQUIRE), ("commit", _COMMIT), ("release", _RELEASE), ("renew", _RENEW)
        ):  # fmt: skip
            self._scripts[name] = self._client.register_script(text)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._renew_forever())]
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                await self._subscribed.wait()
        except TimeoutError:
            await self.close()
            raise StateUnavailable(
                f"cannot open the state store {self.url}: no answer to SUBSCRIBE"
            ) from None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _run(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    async def _listen(self) -> None:
        """Wake the waiters of each released key; after a reconnect, every waiter."""
        attempt = 0
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        attempt = 0
                        self._subscribed.set()
                        for waiters in list(self._waiters.values()):
                            _wake(waiters)
                    elif message["type"] == "message":
                        _wake(self._waiters.get(message["data"], ()))
            except _FAILED as exc:
                self._subscribed.clear()
                log.warning(
                    "state: %s: release notices interrupted (%s); reconnecting", self.url, exc
                )
            finally:
                await asyncio.shield(pubsub.aclose())
            attempt += 1
            await asyncio.sleep(backoff(min(attempt, 8)) + 0.05)

    async def _renew_forever(self) -> None:
        while True:
            await self._busy.wait()
            await asyncio.sleep(self.options.lease / 3)
            sessions = list(self._sessions)
            results = await asyncio.gather(
                *(self._run("renew", s.lock_keys, [s.token, self.lease_ms]) for s in sessions),
                return_exceptions=True,
            )
            for session, lost in zip(sessions, results, strict=True):
                if session.held and session in self._sessions and isinstance(lost, int) and lost:
                    log.warning(
                        "state: %s: a transaction's lock lease ran out before it was renewed "
                        "(event loop blocked over %g s?); its commit will be refused",
                        self.url, self.options.lease,
                    )  # fmt: skip

    def _end(self, session: _Session) -> None:
        session.held = False
        self._sessions.discard(session)
        if not self._sessions:
            self._busy.clear()

    async def lock(self, keys: Sequence[str]) -> _Session:
        if self._client is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.lock_timeout
        session = _Session(self, keys)
        lock_keys = [k.encode() for k in session.lock_keys]
        script_keys = session.lock_keys + [self.prefix + "v:" + k for k in keys]
        args = [session.token, self.lease_ms, len(keys)]
        self._sessions.add(session)
        self._busy.set()
        try:
            while True:
                woken: asyncio.Future[None] = loop.create_future()
                for key in lock_keys:  # before asking, so that no release is missed
                    self._waiters.setdefault(key, set()).add(woken)
                try:
                    try:
                        answer = await self._run("acquire", script_keys, args)
                    except _FAILED as exc:
                        raise self._down(exc, "locking") from exc
                    if answer[0] == 0:
                        session.held = True
                        session.values = {
                            k: v for k, v in zip(keys, answer[2:], strict=True) if v is not None
                        }
                        return session
                    left = deadline - loop.time()
                    if left <= 0:
                        raise StateConflict(
                            f"{self.url}: the keys were not free within lock_timeout "
                            f"({self.options.lock_timeout:g} s)"
                        )
                    # The holder's lease bounds the wait should its release notice be lost.
                    pttl = answer[1] / 1000 if answer[1] > 0 else left
                    try:
                        async with asyncio.timeout(min(left, pttl + 0.005)):
                            await woken
                    except TimeoutError:
                        pass
                finally:
                    for key in lock_keys:
                        waiters = self._waiters.get(key)
                        if waiters is not None:
                            waiters.discard(woken)
                            if not waiters:
                                del self._waiters[key]
        except BaseException:
            await asyncio.shield(session.abort())
            raise

    async def read(self, key: str) -> bytes | None:
        if self._client is None:
            raise StateUnavailable(f"the state store {self.url} is not open")
        try:
            value: bytes | None = await self._client.get(self.prefix + "v:" + key)
        except _FAILED as exc:
            raise self._down(exc, "reading") from exc
        return value

    async def purge(self) -> int:
        return 0  # Redis expires keys itself; deletes are deletes


class _Session:
    def __init__(self, backend: RedisBackend, keys: Sequence[str]) -> None:
        self.backend = backend
        self.token = os.urandom(16).hex()
        self.lock_keys = [backend.prefix + "l:" + k for k in keys]
        self.values: dict[str, bytes] = {}
        self.held = False

    async def commit(self, writes: dict[str, Write]) -> None:
        backend = self.backend
        keys = [*self.lock_keys, *(backend.prefix + "v:" + k for k in writes)]
        keys.append(f"{backend.prefix}c:{self.token}")
        args: list[Any] = [self.token, len(self.lock_keys), len(writes), backend.channel]
        for raw, ttl in writes.values():
            if raw is None:
                args += ["d", "", ""]
            elif ttl is None:
                args += ["s", raw, ""]
            else:
                args += ["x", raw, max(1, round(ttl * 1000))]
        try:
            for attempt in range(3):  # a resend is safe: the marker says if it was done
                try:
                    done = await backend._run("commit", keys, args)
                    break
                except _DOWN as exc:
                    error = exc
                    await asyncio.sleep(backoff(attempt + 2))
                except redis.exceptions.RedisError as exc:
                    raise backend._down(exc, "commit") from exc
            else:
                raise StateUnavailable(
                    f"the state store {backend.url}: commit failed (it may or may not have "
                    f"happened): {error}"
                ) from error
        finally:
            backend._end(self)
        if done == 0:
            raise StateConflict(
                f"{backend.url}: this transaction's locks were lost (their lease of "
                f"{backend.options.lease:g} s ran out: was the event loop blocked?); nothing "
                "was written"
            )

    async def abort(self) -> None:
        backend = self.backend
        backend._end(self)
        try:
            await backend._run("release", self.lock_keys, [self.token, backend.channel])
        except _FAILED as exc:  # the leases will run out
            log.debug("state: %s: releasing locks failed: %s", backend.url, exc)


def _wake(waiters: Any) -> None:
    for future in waiters:
        if not future.done():
            future.set_result(None)
