"""Token buckets shared by the worker processes of one machine: a small mmap'd file.

::

    buckets = FileBuckets(data_dir / str(bot_id) / "flood.buckets")
    wait = await buckets.reserve("bulk", Rate(30.0, burst=30))   # seconds until it may leave
    await buckets.pause("bulk", 7.0)                             # a 429 said retry_after 7

The file holds a fixed table of :data:`SLOTS` buckets, each a key and the two floats of
:class:`~tgrunner.flood.buckets.Bucket` (``tat``, ``paused_until``) on the system-wide
``CLOCK_MONOTONIC`` (``time.monotonic`` on Linux and macOS), which every process of the
machine reads alike. A reservation takes an ``flock`` on the file, reads its key's slot,
runs :meth:`Bucket.reserve <tgrunner.flood.buckets.Bucket.reserve>` on it and writes ``tat``
back: a few microseconds, two system calls, no thread hop.

Why it is written here: no library does an inter-process GCRA. The rate limiters on PyPI
(aiolimiter, limits, pyrate-limiter) keep their state in one process, or in Redis, SQLite or
memcached (a round trip, or a file write, per call); POSIX semaphores count, they do not
schedule. An mmap'd table under a lock is the cheap form of the same dozen lines.

What makes it safe under crashes:

- An ``flock`` belongs to an open file, and the kernel releases it when its holder dies, so a
  SIGKILLed process never wedges the others.
- A write is one aligned 8-byte float (``tat`` or ``paused_until``), so a process killed
  mid-write leaves the old value or the new one. A slot is claimed by writing its floats
  first and its key last: a claim cut short leaves a slot nobody's key matches, free again.
- ``CLOCK_MONOTONIC`` starts again at a boot, so the file records the boot it was made in
  (Linux's ``boot_id``; elsewhere the wall-clock time of the boot) and starts empty after a
  reboot, instead of holding every bucket until a time of the last boot.
- After a ``fork`` the child reopens the file: an inherited ``flock`` would be shared with the
  parent, and exclude nothing between them.

A key whose bucket is idle (full and unpaused, the same as a new one) gives its slot to the
next new key. The table is for the few global buckets (bulk, paid); a chat's bucket stays in
its worker. When every slot holds a busy bucket, :class:`~tgrunner.errors.FloodStoreUnavailable`.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path

from tgrunner.errors import ConfigError, FloodStoreUnavailable
from tgrunner.flood.buckets import Bucket, Rate

__all__ = ["SLOTS", "FileBuckets"]

log = logging.getLogger("tgrunner.flood")

SLOTS = 256
"""Buckets one file holds at once (idle ones make room)."""

_MAGIC = b"TGFLOOD"
_VERSION = 1
# Header: magic, version, slots, boot id (16 bytes), the boot's wall-clock time; then slots.
_HEADER = struct.Struct("<7sBI16sd")
_HEADER_SIZE = 64
_KEY = 32  # a slot: its key (length byte + up to 31 bytes, or a digest), then tat, paused
_FLOATS = struct.Struct("<dd")
_FLOAT = struct.Struct("<d")
_SLOT = _KEY + _FLOATS.size
_SIZE = _HEADER_SIZE + SLOTS * _SLOT
_EMPTY = bytes(_KEY)
_LONG = 255  # length byte of a key stored as its digest
_ENCODED_CACHE = 4096


def _encode(key: str) -> bytes:
    raw = key.encode()
    if len(raw) < _KEY:
        return bytes((len(raw) + 1,)) + raw + bytes(_KEY - 1 - len(raw))
    return bytes((_LONG,)) + hashlib.blake2b(raw, digest_size=_KEY - 1).digest()


def _boot() -> tuple[bytes, float]:
    """This boot's id (zeros where the system has none) and wall-clock start."""
    try:
        boot_id = uuid.UUID(Path("/proc/sys/kernel/random/boot_id").read_text().strip()).bytes
    except (OSError, ValueError):
        boot_id = bytes(16)
    return boot_id, time.time() - time.monotonic()


_open: weakref.WeakSet[FileBuckets] = weakref.WeakSet()


def _after_fork() -> None:
    for buckets in list(_open):
        buckets._forked = True
        buckets._lock = threading.Lock()  # another thread of the parent may have held it


os.register_at_fork(after_in_child=_after_fork)


class FileBuckets:
    """:class:`~tgrunner.protocols.SharedBuckets` in the file at ``path`` (created when
    missing, mode 0600; 12 KiB), for the processes of one machine.

    - ``clock`` (default ``time.monotonic``): seconds on a clock every process sharing the file
      reads alike; tests give their own.

    It opens the file at once: ConfigError when the file is not a bucket file, or cannot be
    opened. Use one instance per event loop (it is thread-safe, but a reservation blocks its
    thread for the microseconds another process holds the lock).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._scratch = Bucket()
        self._where: dict[str, tuple[bytes, int]] = {}
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._forked = False
        self._open()
        _open.add(self)

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the flood bucket file {self.path}: {exc.strerror}; give a "
                "writable path (by default it is in the bot's data dir)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._map = self._prepare(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._where.clear()

    def _prepare(self, fd: int) -> mmap.mmap:
        """Map the file, made (again) when new, cut short, of another version or boot."""
        size = os.fstat(fd).st_size
        head = os.pread(fd, _HEADER.size, 0)
        if size not in (0, _SIZE) and not head.startswith(_MAGIC):
            raise ConfigError(
                f"{self.path} is not a flood bucket file ({size} bytes); give another path, "
                "or delete it if nothing else uses it"
            )
        if size != _SIZE:
            os.ftruncate(fd, _SIZE)
        mm = mmap.mmap(fd, _SIZE)
        boot_id, boot_time = _boot()
        if len(head) == _HEADER.size and head.startswith(_MAGIC):
            _, version, slots, file_boot, file_boot_time = _HEADER.unpack(head)
            same_boot = (
                file_boot == boot_id
                if any(boot_id)
                else abs(file_boot_time - boot_time) < 60.0  # no boot id: the boot's time
            )
            if version == _VERSION and slots == SLOTS and same_boot:
                return mm
            if version != _VERSION or slots != SLOTS:
                log.warning(
                    "the flood bucket file %s was of another version: made again", self.path
                )
        # The slots first and the header last: a process killed in between leaves a file
        # without its magic, which the next one makes again.
        mm[:] = bytes(_SIZE)
        for slot in range(SLOTS):
            _FLOATS.pack_into(mm, _HEADER_SIZE + slot * _SLOT + _KEY, -math.inf, -math.inf)
        mm[: _HEADER.size] = _HEADER.pack(_MAGIC, _VERSION, SLOTS, boot_id, boot_time)
        return mm

    def _slot(self, key: str, mm: mmap.mmap, now: float) -> int:
        """The offset of ``key``'s floats, its slot claimed when it has none (lock held)."""
        known = self._where.get(key)
        if known is not None:
            code, at = known
            if mm[at - _KEY : at] == code:
                return at
        else:
            code = _encode(key)
        at = self._find(code, mm, now)
        if len(self._where) >= _ENCODED_CACHE:
            self._where.clear()
        self._where[key] = (code, at)
        return at

    def _find(self, code: bytes, mm: mmap.mmap, now: float) -> int:
        start = _HEADER_SIZE
        while (found := mm.find(code, start)) >= 0:
            if (found - _HEADER_SIZE) % _SLOT == 0:
                return found + _KEY
            start = found + 1
        for slot in range(SLOTS):
            at = _HEADER_SIZE + slot * _SLOT + _KEY
            tat, paused = _FLOATS.unpack_from(mm, at)
            if mm[at - _KEY : at] == _EMPTY or (tat <= now and paused <= now):
                _FLOATS.pack_into(mm, at, -math.inf, -math.inf)
                mm[at - _KEY : at] = code
                return at
        raise FloodStoreUnavailable(
            f"the flood bucket file {self.path} has no free slot: all {SLOTS} hold busy "
            "buckets; keep per-chat buckets in each process, and only the global ones here"
        )

    def _held(self) -> mmap.mmap:
        mm = self._map
        if mm is None:
            raise RuntimeError(f"the flood bucket file {self.path} is closed")
        if self._forked:
            self._forked = False
            self._close_file()
            self._open()
            mm = self._map
            assert mm is not None
        return mm

    def reserve_now(self, key: str, rate: Rate) -> float:
        """:meth:`reserve`, without a coroutine: the seconds until the call may leave."""
        with self._lock:
            mm = self._held()
            fd = self._fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                now = self._clock()
                at = self._slot(key, mm, now)
                bucket = self._scratch
                bucket.tat, bucket.paused_until = _FLOATS.unpack_from(mm, at)
                leave = bucket.reserve(rate, now)
                _FLOAT.pack_into(mm, at, bucket.tat)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return leave - now

    async def reserve(self, key: str, rate: Rate) -> float:
        """Take ``key``'s next slot under ``rate``: the seconds until the call may leave."""
        return self.reserve_now(key, rate)

    async def pause(self, key: str, seconds: float) -> None:
        """No call on ``key`` leaves for ``seconds`` from now; a later end wins. 0 or less
        changes nothing; ValueError for NaN or infinity."""
        if not math.isfinite(seconds):
            raise ValueError(f"a pause must be a finite number of seconds, not {seconds!r}")
        if seconds <= 0:
            return
        with self._lock:
            mm = self._held()
            fd = self._fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                now = self._clock()
                at = self._slot(key, mm, now)
                paused = _FLOAT.unpack_from(mm, at + _FLOAT.size)[0]
                if now + seconds > paused:
                    _FLOAT.pack_into(mm, at + _FLOAT.size, now + seconds)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _close_file(self) -> None:
        mm, self._map = self._map, None
        if mm is not None:
            mm.close()
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    async def close(self) -> None:
        """Unmap and close the file (it stays for the other processes). Safe to call twice."""
        with self._lock:
            self._close_file()
        _open.discard(self)
