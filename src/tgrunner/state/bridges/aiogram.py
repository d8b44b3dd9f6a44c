"""An aiogram 3 FSM storage on a tgrunner state store: ``TgrunnerStorage``.

::

    from tgrunner.state.bridges.aiogram import TgrunnerStorage

    dp = Dispatcher(storage=TgrunnerStorage())                  # the store of 'tgrunner run'
    dp = Dispatcher(storage=TgrunnerStorage("redis://h/0"))     # or a store of its own

- **Opt-in.** tgrunner never changes a Dispatcher: one built without a storage keeps
  aiogram's MemoryStorage, which works with ``--workers N`` (a chat stays in one worker) but
  is lost at a restart. With this storage the FSM state and data are in the store, shared by
  worker processes and machines, and survive restarts and crashes.
- **Which store.** None (default): this process's store, the one ``tgrunner run`` opened
  (``--state URL``, default SQLite in ``<data dir>/<bot id>/state.sqlite``), looked up at each
  call, so a Dispatcher built at import works. A URL: a store of its own, connected at first
  use and closed by :meth:`TgrunnerStorage.close` (aiogram calls it at shutdown). A
  :class:`~tgrunner.state.Store`: used as it is, never closed here.
- **Atomic.** ``update_data`` is a one-key transaction (read, merge, write with the key
  locked across processes), so two updates merging into one FSM record never lose a field;
  ``set_state`` and ``set_data`` are single writes.
- **Keys.** ``aiogram:fsm:<bot id>:<chat id>[:<thread id>]:<user id>:<destiny>:state`` and
  ``...:data`` by default (aiogram's ``DefaultKeyBuilder`` with the bot id and the destiny);
  pass ``key_builder`` for another layout. :meth:`TgrunnerStorage.keys_of` names them, for a
  transaction that changes an FSM record and other keys at once. Values are JSON, as in
  aiogram's RedisStorage; empty data and a cleared state remove their key.
- **No event isolation** is offered: under ``tgrunner run`` the updates that share an FSM key
  are already handled one at a time, across worker processes (the aiogram front-end's keys),
  and an isolation lock held around a whole handler would make the handler's own storage
  calls transactions nested in it, which the store refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)

from tgrunner.state.current import current_store
from tgrunner.state.registry import open_store
from tgrunner.state.store import Store

__all__ = ["TgrunnerStorage"]


class TgrunnerStorage(BaseStorage):
    """aiogram's FSM storage on a tgrunner store (see the module doc).

    - ``store``: a :class:`~tgrunner.state.Store`, a store URL, or None (default: the store of
      ``tgrunner run``, looked up at each call).
    - ``key_builder``: default ``DefaultKeyBuilder(prefix="aiogram:fsm", with_bot_id=True,
      with_destiny=True)``.
    - ``state_ttl`` / ``data_ttl``: seconds a state or data record lives after its last
      write, default None: for ever.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        key_builder: KeyBuilder | None = None,
        state_ttl: float | None = None,
        data_ttl: float | None = None,
    ) -> None:
        self._url = store if isinstance(store, str) else None
        self._store = open_store(store) if isinstance(store, str) else store
        self.key_builder = key_builder or DefaultKeyBuilder(
            prefix="aiogram:fsm", with_bot_id=True, with_destiny=True
        )
        self.state_ttl = state_ttl
        self.data_ttl = data_ttl

    @property
    def store(self) -> Store:
        """The store in use: the one given, else this process's (StateError when none)."""
        return self._store if self._store is not None else current_store()

    def keys_of(self, key: StorageKey) -> tuple[str, str]:
        """The store keys of ``key``'s state and data, for a transaction that changes them
        together with keys of your own (a confirmed transfer clears its FSM record in the
        transaction that moves the money, so a replay cannot move it twice)."""
        return self.key_builder.build(key, "state"), self.key_builder.build(key, "data")

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = self.key_builder.build(key, "state")
        value = state.state if isinstance(state, State) else state
        if value is None:
            await self.store.delete(name)
        else:
            await self.store.set(name, value, ttl=self.state_ttl)

    async def get_state(self, key: StorageKey) -> str | None:
        value = await self.store.get(self.key_builder.build(key, "state"))
        return None if value is None else str(value)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            raise DataNotDictLikeError(
                f"Data must be a dict or dict-like object, got {type(data).__name__}"
            )
        name = self.key_builder.build(key, "data")
        if data:
            await self.store.set(name, data, ttl=self.data_ttl)
        else:
            await self.store.delete(name)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        value = await self.store.get(self.key_builder.build(key, "data"))
        return dict(value) if isinstance(value, dict) else {}

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``data`` into the record, atomically (a transaction on its key); the new
        data."""
        name = self.key_builder.build(key, "data")
        async with self.store.transaction(name) as tx:
            current = await tx.get(name, None)
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(data)
            if merged:
                tx.set(name, merged, ttl=self.data_ttl)
            else:
                tx.delete(name)
        return merged.copy()

    async def close(self) -> None:
        """Close the store if it is this storage's own (given as a URL; a new one connects
        at the next use); safe to call twice."""
        if self._url is not None and self._store is not None:
            store, self._store = self._store, open_store(self._url)
            await store.close()
