"""The memory backend: a dict in this process, for tests.

The store's per-key ``asyncio.Lock`` queues already keep transactions on a key one at a time
in a process, and this data is seen by one process only, so locking needs nothing more.
``memory://NAME`` is shared by the stores of that name in the process; ``memory://`` is a
store's own.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from tgrunner.state.api import StoreOptions, Write

__all__ = ["MemoryBackend"]

_Data = dict[str, tuple[bytes, float | None]]
_NAMED: dict[str, _Data] = {}
_ids = itertools.count(1)


class MemoryBackend:
    """Values in a dict (``memory://`` or ``memory://NAME``); expiry on the monotonic clock."""

    def __init__(self, url: str, options: StoreOptions) -> None:
        name = urlsplit(url).netloc
        self.url = f"memory://{name}"
        self.identity = f"memory://{name}" if name else f"memory:#{next(_ids)}"
        self.data: _Data = _NAMED.setdefault(name, {}) if name else {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _value(self, key: str, now: float) -> bytes | None:
        item = self.data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= now:
            del self.data[key]
            return None
        return item[0]

    async def lock(self, keys: Sequence[str]) -> _Session:
        now = time.monotonic()
        values = {k: v for k in keys if (v := self._value(k, now)) is not None}
        return _Session(self, values)

    async def read(self, key: str) -> bytes | None:
        return self._value(key, time.monotonic())

    async def purge(self) -> int:
        now = time.monotonic()
        dead = [
            k for k, (_, expires) in self.data.items() if expires is not None and expires <= now
        ]
        for key in dead:
            del self.data[key]
        return len(dead)


class _Session:
    def __init__(self, backend: MemoryBackend, values: dict[str, bytes]) -> None:
        self.backend = backend
        self.values = values

    async def commit(self, writes: dict[str, Write]) -> None:
        now = time.monotonic()
        for key, (raw, ttl) in writes.items():
            if raw is None:
                self.backend.data.pop(key, None)
            else:
                self.backend.data[key] = (raw, None if ttl is None else now + ttl)

    async def abort(self) -> None:
        pass
