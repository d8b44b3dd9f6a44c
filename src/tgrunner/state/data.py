"""A dict kept under one key of a store: what ``ctx.chat_data`` and ``ctx.user_data`` are.

::

    async with ctx.user_data as data:        # a transaction on "user:<id>"
        data["n"] = data.get("n", 0) + 1     # committed at the block's end, if it changed
    seen = await ctx.user_data.get()           # the committed dict, no lock (a copy)

The ``async with`` block is a one-key :meth:`~tgrunner.state.Store.transaction`: the key is
locked across processes and machines while the block runs, so two updates of the same user
(from two chats, in two worker processes) never lose each other's changes, even when the
block awaits. An exception in the block writes nothing. Nothing touches the store before the
block (or :meth:`StoredDict.get`) does, so a handler that keeps no state pays nothing.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from tgrunner.state.api import encode
from tgrunner.state.current import current_store
from tgrunner.state.store import Store, Transaction

__all__ = ["StoredDict"]


class StoredDict:
    """The dict under ``key`` in ``store`` (default: this process's store, looked up at first
    use; see :func:`~tgrunner.state.current.current_store`). ``key`` None: the update has no
    such key (``what`` says which, for the error).

    - ``async with it as data``: ``data`` is the dict (``{}`` when the key has none), read
      under the key's lock; changes are committed at the block's end (an empty dict removes
      the key), none on an exception. Values must be JSON (TypeError otherwise).
    - ``await it.get()``: the committed dict (``{}`` when none), without a lock.
    - ``await it.clear()``: remove the key.
    - ``it.key``: the store key, for a transaction of several keys::

          async with ctx.store.transaction(ctx.chat_data.key, ctx.user_data.key) as tx: ...

    Blocks do not nest in one task (the store refuses nested transactions): name both keys in
    one ``ctx.store.transaction`` instead.
    """

    __slots__ = ("_before", "_data", "_key", "_store", "_tx", "_what")

    def __init__(self, key: str | None, *, store: Store | None = None, what: str = "data") -> None:
        self._key = key
        self._store = store
        self._what = what
        self._tx: Transaction | None = None
        self._data: dict[str, Any] | None = None
        self._before = b""

    def __repr__(self) -> str:
        return f"<StoredDict {self._key}>"

    @property
    def key(self) -> str:
        """The store key; ValueError when the update has none."""
        if self._key is None:
            raise ValueError(f"this update has no {self._what}: it names no chat or user")
        return self._key

    def _of(self) -> Store:
        return self._store if self._store is not None else current_store()

    async def get(self) -> dict[str, Any]:
        """The committed dict (a copy; ``{}`` when the key has none), without a lock."""
        return _as_dict(self.key, await self._of().get(self.key, None))

    async def clear(self) -> None:
        """Remove the key's dict."""
        await self._of().delete(self.key)

    async def __aenter__(self) -> dict[str, Any]:
        if self._tx is not None:
            raise RuntimeError(f"{self._what} is already open: async with it once at a time")
        key = self.key
        tx = self._of().transaction(key)
        await tx.__aenter__()
        try:
            data = _as_dict(key, await tx.get(key, None))
        except BaseException as exc:
            await tx.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._tx, self._data, self._before = tx, data, encode(key, data)
        return data

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx, data = self._tx, self._data
        assert tx is not None and data is not None
        self._tx = self._data = None
        if exc_type is None:
            try:
                after = encode(self.key, data)
                if after != self._before:
                    if data:
                        tx._writes[self.key] = (after, None)  # encoded once, as Store.set does
                    else:
                        tx.delete(self.key)
            except BaseException as error:
                await tx.__aexit__(type(error), error, error.__traceback__)
                raise
        await tx.__aexit__(exc_type, exc, tb)


def _as_dict(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(
            f"state key {key!r} holds a {type(value).__name__}, not a dict: it was set by "
            "other code; give that code another key"
        )
    return value
