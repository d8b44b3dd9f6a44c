"""Updates whose key lane is full, parked by id while their bodies wait in the journal.

One chat at its per-key limit must not stop the others. When an update's lane is full, the
runtime parks it here instead of in the scheduler: only its id and keys stay in memory; the
update itself is read back from the journal when its lane has room. An update that shares a
key with a parked one is parked behind it, so per-key order holds: parked updates leave in
arrival order per key, as the scheduler's lanes do (each counts the lanes where it is not at
the head; at zero it may leave).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator

__all__ = ["Overflow", "Parked"]


class Parked:
    """One parked update: its id, its keys, and how many lanes it waits behind."""

    __slots__ = ("blocked", "keys", "update_id")

    def __init__(self, update_id: int, keys: tuple[Hashable, ...]) -> None:
        self.update_id = update_id
        self.keys = keys
        self.blocked = 0


class Overflow:
    """Parked updates in per-key FIFO lanes; ``free()`` lists those first in all their lanes."""

    def __init__(self) -> None:
        self._lanes: dict[Hashable, deque[Parked]] = {}
        self._free: dict[Parked, None] = {}  # insertion-ordered set
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def blocks(self, keys: tuple[Hashable, ...]) -> bool:
        """Whether an update with these keys must park behind a parked one."""
        lanes = self._lanes
        return any(k in lanes for k in keys)

    def park(self, update_id: int, keys: tuple[Hashable, ...]) -> None:
        """Park an update (in arrival order)."""
        entry = Parked(update_id, keys)
        lanes = self._lanes
        for k in keys:
            lane = lanes.get(k)
            if lane is None:
                lanes[k] = deque((entry,))
            else:
                lane.append(entry)
                entry.blocked += 1
        if not entry.blocked:
            self._free[entry] = None
        self.count += 1

    def free(self) -> Iterator[Parked]:
        """Parked updates at the head of every lane they are in, oldest first (a snapshot)."""
        return iter(list(self._free))

    def release(self, entry: Parked) -> None:
        """Take a free entry out; the entries behind it move up."""
        del self._free[entry]
        lanes = self._lanes
        for k in entry.keys:
            lane = lanes[k]
            lane.popleft()
            if lane:
                head = lane[0]
                head.blocked -= 1
                if not head.blocked:
                    self._free[head] = None
            else:
                del lanes[k]
        self.count -= 1
