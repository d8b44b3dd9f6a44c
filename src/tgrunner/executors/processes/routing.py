"""Sticky routing: which worker process an update goes to.

An update goes to the worker given by a stable hash of its first (primary) key, so one chat
is always handled by one process and its in-memory state (an aiogram MemoryStorage FSM, a PTB
ConversationHandler, a cache) stays where its updates go. The hash is CRC-32 of the key's
bytes: the same in every process and every run (never Python's salted ``hash()``), and never
the update_id, which would scatter a chat over every worker.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable

__all__ = ["slot_for", "stable_hash"]


def stable_hash(key: Hashable) -> int:
    """A 32-bit hash of ``key`` that is equal in every process and run.

    A ``str`` is hashed as UTF-8, ``bytes`` as they are, anything else by its ``repr`` (ints,
    tuples of them: their repr is stable).
    """
    if type(key) is str:
        return zlib.crc32(key.encode("utf-8", "surrogatepass"))
    if isinstance(key, bytes | bytearray):
        return zlib.crc32(key)
    return zlib.crc32(repr(key).encode("utf-8", "surrogatepass"))


def slot_for(key: Hashable, workers: int) -> int:
    """The worker slot (``0 .. workers - 1``) for an update whose first key is ``key``."""
    return stable_hash(key) % workers
