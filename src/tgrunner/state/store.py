"""The store: JSON values by key, and transactions that read and write several keys atomically.

A :class:`Store` is one backend (SQLite, PostgreSQL, MySQL/MariaDB, Redis/Valkey, memory) seen
through one API::

    async with store.transaction(f"acct:{src}", f"acct:{dst}") as tx:
        a = await tx.get(f"acct:{src}", 0)
        tx.set(f"acct:{src}", a - amount)
        tx.set(f"acct:{dst}", await tx.get(f"acct:{dst}", 0) + amount)

How a transaction works, on every backend:

1. Its keys are locked, in one global order, so two transactions never deadlock. In this
   process the waiters of a key queue behind one ``asyncio.Lock`` (shared by every store on the
   same data), so only one of them asks the backend for the key's lock at a time; the backend's
   lock then keeps other processes and machines out. Deadlock and serialization errors are
   retried here with jittered backoff, a bounded number of times (:class:`StateConflict` after).
2. The keys' values are read once, under the locks; ``tx.get`` answers from them.
3. ``tx.set`` and ``tx.delete`` are buffered; at the block's end they are committed at once,
   in one atomic write, and the locks let go. An exception in the block discards them: no
   partial write is ever visible.

A backend is a :class:`Backend`: it locks and reads (:meth:`Backend.lock`, giving a
:class:`Session`), commits, reads one committed value, and purges expired values.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tgrunner.errors import StateConflict, StateError
from tgrunner.state.api import (
    MAX_KEY_BYTES,
    Backend,
    Session,
    StoreOptions,
    Write,
    decode,
    encode,
    retrying,
)

__all__ = ["Store", "Transaction"]

log = logging.getLogger("tgrunner.state")


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"a state key is a non-empty str, not {key!r}")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"state key {key[:40]!r}... is longer than {MAX_KEY_BYTES} bytes")
    return key


def _check_ttl(ttl: float | None) -> float | None:
    if ttl is not None and (isinstance(ttl, bool) or not ttl > 0):
        raise ValueError(f"ttl is a number of seconds > 0, or None for no expiry; not {ttl!r}")
    return None if ttl is None else float(ttl)


class _KeyQueues:
    """Per-key ``asyncio.Lock``s of one backend's data in this process: a waiter is woken by
    the release itself. An entry lives while someone holds or waits for the key."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def acquire(self, keys: Sequence[str]) -> None:
        done: list[str] = []
        try:
            for key in keys:
                lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
                users[0] += 1
                try:
                    await lock.acquire()
                except BaseException:
                    self._drop(key)
                    raise
                done.append(key)
        except BaseException:
            self.release(done)
            raise

    def release(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._locks[key][0].release()
            self._drop(key)

    def _drop(self, key: str) -> None:
        users = self._locks[key][1]
        users[0] -= 1
        if users[0] == 0:
            del self._locks[key]


_QUEUES: weakref.WeakValueDictionary[str, _KeyQueues] = weakref.WeakValueDictionary()
# The stores each task has a transaction open on (by identity): a transaction started inside
# another on the same store, in the same task, would wait for its own locks.
_OPEN: weakref.WeakKeyDictionary[asyncio.Task[Any], set[str]] = weakref.WeakKeyDictionary()


class Store:
    """A state store on ``backend``; made by :func:`~tgrunner.state.open_store`.

    It connects at its first use (or at ``await store.open()``, or ``async with store``), and
    raises StateUnavailable then when the backend cannot be reached. Keys are str (at most
    :data:`MAX_KEY_BYTES`), values JSON. Inside a transaction use its ``tx``: the store's own
    ``set``, ``delete``, ``update`` and transactions do not nest in it, in the same task (they
    would wait for their own locks).
    """

    def __init__(self, backend: Backend, options: StoreOptions) -> None:
        self.backend = backend
        self.options = options
        queues = _QUEUES.get(backend.identity)
        if queues is None:
            queues = _QUEUES[backend.identity] = _KeyQueues()
        self._queues = queues
        self._state = "new"
        self._opening = asyncio.Lock()
        self._purger: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where the store is, password hidden."""
        return self.backend.url

    def __repr__(self) -> str:
        return f"<Store {self.url}>"

    async def open(self) -> None:
        """Connect, and create the table or file when missing; once. StateUnavailable."""
        async with self._opening:
            if self._state == "closed":
                raise StateError(f"the state store {self.url} is closed")
            if self._state == "open":
                return
            await self.backend.open()
            self._state = "open"
            if self.options.purge_interval > 0:
                self._purger = asyncio.get_running_loop().create_task(self._purge_forever())

    async def close(self) -> None:
        """Stop the sweeps and let go of connections; safe to call twice."""
        if self._state == "closed":
            return
        was_open, self._state = self._state == "open", "closed"
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
        if was_open:
            await self.backend.close()

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def check(self) -> None:
        """StateUnavailable unless the backend answers now (for ``/readyz``)."""
        await self._ready()
        await self.backend.read("tgrunner:check")

    def transaction(self, *keys: str) -> Transaction:
        """A transaction on ``keys`` (``async with``): they are locked in sorted order at its
        start, read under the lock, and its writes committed together at its end."""
        if not keys:
            raise TypeError("transaction() needs at least one key")
        return Transaction(self, tuple(sorted({_check_key(k) for k in keys})))

    async def get(self, key: str, default: Any = None) -> Any:
        """The committed value of ``key`` (no lock), ``default`` when it has none."""
        await self._ready()
        raw = await self.backend.read(_check_key(key))
        return default if raw is None else decode(raw)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Set ``key`` to ``value`` (JSON), for ``ttl`` seconds (None: no expiry)."""
        raw, ttl = encode(key, value), _check_ttl(ttl)
        async with self.transaction(key) as tx:
            tx._writes[key] = (raw, ttl)

    async def delete(self, key: str) -> None:
        """Remove ``key``'s value (nothing when it has none)."""
        async with self.transaction(key) as tx:
            tx.delete(key)

    async def update(
        self,
        key: str,
        fn: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: float | None = None,
    ) -> Any:
        """Set ``key`` to ``fn(current)`` in a one-key transaction and return it. ``fn`` may
        be sync or async; ``current`` is ``default`` when the key has no value. The new value
        gets ``ttl`` (None: no expiry)."""
        async with self.transaction(key) as tx:
            new = fn(await tx.get(key, default))
            if inspect.isawaitable(new):
                new = await new
            tx.set(key, new, ttl)
        return new

    async def purge(self) -> int:
        """Remove expired and deleted values now (the sweeps do it every ``purge_interval``);
        how many."""
        await self._ready()
        return await self.backend.purge()

    async def _ready(self) -> None:
        if self._state != "open":
            await self.open()

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.purge_interval)
            try:
                await self.backend.purge()
            except StateError as exc:
                log.warning("state: sweeping expired values of %s failed: %s", self.url, exc)


class Transaction:
    """``async with store.transaction(*keys) as tx``: see :meth:`Store.transaction`.

    ``await tx.get(key, default)`` reads (the transaction's own writes first);
    ``tx.set(key, value, ttl=None)`` and ``tx.delete(key)`` buffer writes. A key outside the
    transaction's keys is refused (ValueError). At the block's end the writes are committed
    atomically; an exception discards them. A commit interrupted by cancellation still
    finishes (or fails) before the cancellation goes on, so the locks are never left in doubt.
    """

    __slots__ = ("_keys", "_open", "_session", "_state", "_store", "_writes")

    def __init__(self, store: Store, keys: tuple[str, ...]) -> None:
        self._store = store
        self._keys = keys
        self._writes: dict[str, Write] = {}
        self._session: Session | None = None
        self._state = "new"
        self._open: set[str] | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The transaction's keys, sorted."""
        return self._keys

    async def __aenter__(self) -> Transaction:
        store = self._store
        identity = store.backend.identity
        task = asyncio.current_task()
        active = _OPEN.setdefault(task, set()) if task is not None else set()
        if identity in active:
            raise RuntimeError(
                f"a transaction on {store.url} was started inside another one on the same store:"
                " transactions do not nest (they would wait for their own locks); name every "
                "key in one transaction(*keys), and use tx.get / tx.set inside it"
            )
        if self._state != "new":
            raise RuntimeError("a transaction is used once: call store.transaction() again")
        self._state = "locking"
        await store._ready()
        try:
            async with asyncio.timeout(store.options.lock_timeout):
                await store._queues.acquire(self._keys)
        except TimeoutError:
            self._state = "ended"
            raise StateConflict(
                f"{store.url}: the keys {', '.join(map(repr, self._keys))} were not free within "
                f"lock_timeout ({store.options.lock_timeout:g} s): a transaction of this process "
                "holds them"
            ) from None
        try:
            self._session = await retrying(
                lambda: store.backend.lock(self._keys),
                store.options.retries,
                f"locking {', '.join(map(repr, self._keys))} in {store.url}",
            )
        except BaseException:
            store._queues.release(self._keys)
            self._state = "ended"
            raise
        active.add(identity)
        self._open = active
        self._state = "open"
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        assert self._session is not None and self._open is not None
        session, self._state = self._session, "ended"
        try:
            if exc_type is None:  # also with no writes: a backend may check its locks held
                await _finish(session.commit(self._writes))
            else:
                await _finish(session.abort())
        finally:
            self._open.discard(self._store.backend.identity)
            self._store._queues.release(self._keys)

    def _check(self, key: str) -> None:
        if self._state != "open":
            raise RuntimeError("this transaction is not open: use it inside its async with block")
        if key not in self._keys:
            raise ValueError(
                f"state key {key!r} is not one of this transaction's keys "
                f"({', '.join(map(repr, self._keys))}): name it in store.transaction(...)"
            )

    async def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``: this transaction's own write, else the value read under the
        lock; ``default`` when there is none."""
        self._check(key)
        assert self._session is not None
        raw = self._writes[key][0] if key in self._writes else self._session.values.get(key)
        return default if raw is None else decode(raw)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Set ``key`` to ``value`` (JSON; TypeError otherwise) at commit, for ``ttl`` seconds
        (None: no expiry)."""
        self._check(key)
        self._writes[key] = (encode(key, value), _check_ttl(ttl))

    def delete(self, key: str) -> None:
        """Remove ``key``'s value at commit."""
        self._check(key)
        self._writes[key] = (None, None)


async def _finish(step: Awaitable[None]) -> None:
    """Run a commit or an abort to its end even when the caller is cancelled meanwhile: one
    cut in half would leave a connection, and its locks, in an unknown state."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    if cancelled:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "state: a commit failed while its caller was cancelled: %s", task.exception()
            )
        raise asyncio.CancelledError
    task.result()
