"""A python-telegram-bot 22 persistence on a tgrunner state store: ``TgrunnerPersistence``.

::

    from tgrunner.state.bridges.ptb import TgrunnerPersistence

    application = (
        ApplicationBuilder().token(TOKEN).persistence(TgrunnerPersistence()).build()
    )   # user_data, chat_data, bot_data and persistent ConversationHandlers in the store

- **Which store.** None (default): the store of ``tgrunner run`` (``--state URL``, default
  SQLite in ``<data dir>/<bot id>/state.sqlite``), looked up when first needed. A URL: a
  store of its own, closed at the application's shutdown. A
  :class:`~tgrunner.state.Store`: used as it is.
- **Crash-safe, no flush interval.** Under ``tgrunner run`` the application's data is
  written once each update has been handled, before the update counts as finished, so a
  crash (SIGKILL included) loses nothing: what was not written belongs to an update that is
  handled again. Each write is a transaction of its own, so the store never holds half of
  one. Under PTB's own ``run_polling`` PTB writes every ``update_interval`` seconds (default
  1 here).
- **Safe with --workers N.** Before each handler, PTB refreshes the user's, the chat's and
  the bot's data from the store (``refresh_*``), so a worker process sees what another wrote;
  tgrunner's keys for PTB (the chat and the user) keep one user's updates one at a time
  across workers. ``tgrunner run`` accepts this persistence with worker processes (it refuses
  file persistences such as ``PicklePersistence``).
- **Layout.** ``ptb:user:<id>``, ``ptb:chat:<id>``, ``ptb:bot_data``,
  ``ptb:callback_data``, ``ptb:conversation:<name>:<key as JSON>``, and one index per kind
  (``ptb:users``, ``ptb:chats``, ``ptb:conversations:<name>``), changed in the same
  transaction as the entry it lists, so that ``get_user_data`` and ``get_conversations``
  find every entry at start. ``prefix`` changes ``ptb:``.
- **Values are JSON**: the data dicts (str keys), conversation states (int, str) and
  callback data must be JSON values; anything else raises TypeError when it is written. An
  emptied ``user_data`` or ``chat_data`` removes its entry.

Limits: ``bot_data`` is one value, written whole when it changed: two worker processes that
change it at the same moment keep one of the changes (keep shared counters in
``user_data``, or in the store with a transaction). ``application.user_data`` lists, at
start, every user the store has: a large bot loads them all, as with PTB's own persistences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
from telegram.ext import BasePersistence, PersistenceInput

from tgrunner.state.api import encode
from tgrunner.state.current import current_store
from tgrunner.state.registry import open_store
from tgrunner.state.store import Store

__all__ = ["TgrunnerPersistence"]

Data = dict[Any, Any]
_EMPTY = hashlib.blake2b(b"{}", digest_size=16).digest()


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


class TgrunnerPersistence(BasePersistence[Data, Data, Data]):
    """PTB's persistence on a tgrunner store (see the module doc).

    - ``store``: a :class:`~tgrunner.state.Store`, a store URL, or None (default: the store of
      ``tgrunner run``).
    - ``store_data``: which kinds of data to keep, default all (PTB's ``PersistenceInput``).
    - ``update_interval``: seconds between PTB's own writes, default 1; under
      ``tgrunner run`` the data is also written after each update.
    - ``prefix``: of every store key, default ``"ptb:"``.
    """

    writes_through = True
    """Read by tgrunner's PTB front-end: write the application's data after each update."""

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        store_data: PersistenceInput | None = None,
        update_interval: float = 1.0,
        prefix: str = "ptb:",
    ) -> None:
        super().__init__(store_data=store_data, update_interval=update_interval)
        self._url = store if isinstance(store, str) else None
        self._store = open_store(store) if isinstance(store, str) else store
        self.prefix = prefix
        # A digest of each value as this process last read or wrote it: an update that
        # changed nothing writes nothing (and never puts back an older copy).
        self._seen: dict[str, bytes] = {}

    @property
    def store(self) -> Store:
        """The store in use: the one given, else this process's (StateError when none)."""
        return self._store if self._store is not None else current_store()

    def _key(self, *parts: object) -> str:
        return self.prefix + ":".join(map(str, parts))

    # -- reading ----------------------------------------------------------------------------

    async def _listed(self, index: str, entry: Callable[[Any], str]) -> dict[Any, Any]:
        store = self.store
        found = {}
        for member in await store.get(index, []):
            key = entry(member)
            value = await store.get(key)
            if value is not None:
                found[member] = value
                self._seen[key] = _digest(encode(key, value))
        return found

    async def get_user_data(self) -> dict[int, Data]:
        return await self._listed(self._key("users"), lambda uid: self._key("user", uid))

    async def get_chat_data(self) -> dict[int, Data]:
        return await self._listed(self._key("chats"), lambda cid: self._key("chat", cid))

    async def get_bot_data(self) -> Data:
        key = self._key("bot_data")
        value = await self.store.get(key, {})
        self._seen[key] = _digest(encode(key, value))
        return dict(value)

    async def get_callback_data(self) -> Any:
        value = await self.store.get(self._key("callback_data"))
        if value is None:
            return None
        buttons, queries = value
        return [tuple(b) for b in buttons], dict(queries)

    async def get_conversations(self, name: str) -> MutableMapping[tuple[int | str, ...], object]:
        index = self._key("conversations", name)
        found = await self._listed(index, lambda k: self._key("conversation", name, k))
        return {tuple(orjson.loads(k)): state for k, state in found.items()}

    async def _refresh(self, key: str, data: Data) -> None:
        value = await self.store.get(key, {})
        data.clear()
        data.update(value)
        self._seen[key] = _digest(encode(key, value))

    async def refresh_user_data(self, user_id: int, user_data: Data) -> None:
        await self._refresh(self._key("user", user_id), user_data)

    async def refresh_chat_data(self, chat_id: int, chat_data: Data) -> None:
        await self._refresh(self._key("chat", chat_id), chat_data)

    async def refresh_bot_data(self, bot_data: Data) -> None:
        await self._refresh(self._key("bot_data"), bot_data)

    # -- writing ----------------------------------------------------------------------------

    async def _put(
        self, key: str, index: str | None, member: Any, value: Any, *, force: bool = False
    ) -> None:
        """Set ``key`` to ``value`` (None or empty: remove it), listing ``member`` in
        ``index`` exactly while the key has a value; nothing when this process last saw
        ``value`` there already (unless ``force``)."""
        raw = None if value is None or value == {} else encode(key, value)
        digest = _EMPTY if raw is None else _digest(raw)
        if not force and self._seen.get(key) == digest:
            return
        store = self.store
        async with store.transaction(key) as tx:
            listed = await tx.get(key) is not None
            if index is None or listed == (raw is not None):  # the index stays as it is
                _write(tx, key, raw)
                index = None
        if index is not None:  # the entry comes or goes: change the index with it
            async with store.transaction(key, index) as tx:
                members = [m for m in await tx.get(index, []) if m != member]
                if raw is not None:
                    members.append(member)
                _write(tx, key, raw)
                tx.set(index, members)
        self._seen[key] = digest

    async def update_user_data(self, user_id: int, data: Data) -> None:
        await self._put(self._key("user", user_id), self._key("users"), user_id, data)

    async def update_chat_data(self, chat_id: int, data: Data) -> None:
        await self._put(self._key("chat", chat_id), self._key("chats"), chat_id, data)

    async def update_bot_data(self, data: Data) -> None:
        await self._put(self._key("bot_data"), None, None, data)

    async def update_callback_data(self, data: Any) -> None:
        buttons, queries = data
        value = [[list(b) for b in buttons], dict(queries)]
        await self._put(self._key("callback_data"), None, None, value)

    async def update_conversation(
        self, name: str, key: tuple[int | str, ...], new_state: object | None
    ) -> None:
        member = orjson.dumps(list(key)).decode()
        entry = self._key("conversation", name, member)
        await self._put(entry, self._key("conversations", name), member, new_state)

    async def drop_user_data(self, user_id: int) -> None:
        key = self._key("user", user_id)
        await self._put(key, self._key("users"), user_id, None, force=True)

    async def drop_chat_data(self, chat_id: int) -> None:
        key = self._key("chat", chat_id)
        await self._put(key, self._key("chats"), chat_id, None, force=True)

    async def flush(self) -> None:
        """Nothing is waiting to be written; closes the store if it is this persistence's own
        (given as a URL; a new one connects at the next use)."""
        if self._url is not None and self._store is not None:
            store, self._store = self._store, open_store(self._url)
            await store.close()


def _write(tx: Any, key: str, raw: bytes | None) -> None:
    if raw is None:
        tx.delete(key)
    else:
        tx._writes[key] = (raw, None)  # encoded once, as Store.set does
