"""Key locks between the processes of one machine: one byte of a lock file per key, locked with
``fcntl``.

- The byte is at a 62-bit hash of the key, so any key has one and the file stays empty (a lock
  needs no data under it). Two keys with the same hash only wait for each other.
- A waiter sleeps in the kernel (``F_SETLKW``, in a thread) and is woken by the unlock itself:
  a handoff, not polling. The kernel drops the locks of a process that dies, SIGKILL
  included, so no lock outlives its holder.
- Linux uses open file description locks (``F_OFD_*``): they belong to the open file, not to
  the process, so the kernel's deadlock check (which sees processes, and would report false
  deadlocks between the threads of two processes) does not apply; sorted order is what
  prevents deadlocks. Elsewhere POSIX ``lockf`` is used and a reported deadlock is retried.
- A process opens each lock file once (:meth:`KeyLocks.shared`): closing any descriptor of a
  file drops the process's POSIX locks on it.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import struct
import sys
import threading
from collections.abc import Sequence

from tgrunner.errors import StateConflict
from tgrunner.state.api import Retry

__all__ = ["KeyLocks", "offset"]

_OFD = sys.platform == "linux" and hasattr(fcntl, "F_OFD_SETLK") and struct.calcsize("P") == 8
_BUSY = (errno.EAGAIN, errno.EACCES)


def offset(key: str) -> int:
    """The lock file byte of ``key``."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def _flock(kind: int, start: int) -> bytes:
    # struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks).
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, 1, 0)


class KeyLocks:
    """The key locks of one lock file (``path``), shared by this process's stores on it."""

    _open: dict[str, tuple[KeyLocks, list[int]]] = {}  # noqa: RUF012 (a registry, on purpose)

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._pending: dict[int, asyncio.Future[BaseException | None]] = {}

    @classmethod
    def shared(cls, path: str) -> KeyLocks:
        """This process's :class:`KeyLocks` on ``path``; :meth:`close` it once per call."""
        entry = cls._open.get(path)
        if entry is None:
            entry = cls._open[path] = (cls(path), [0])
        entry[1][0] += 1
        return entry[0]

    def close(self) -> None:
        """Give back one :meth:`shared`; the file is closed with the last one."""
        users = self._open[self.path][1]
        users[0] -= 1
        if users[0] == 0:
            del self._open[self.path]
            os.close(self._fd)

    def _lock(self, start: int, wait: bool) -> bool:
        try:
            if _OFD:
                command = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
                fcntl.fcntl(self._fd, command, _flock(fcntl.F_WRLCK, start))
            else:
                flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
                fcntl.lockf(self._fd, flags, 1, start, os.SEEK_SET)
        except OSError as exc:
            if exc.errno in _BUSY and not wait:
                return False
            if exc.errno == errno.EDEADLK:
                raise Retry("the kernel reported a lock deadlock") from None
            raise
        return True

    def _unlock(self, start: int) -> None:
        if _OFD:
            fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_UNLCK, start))
        else:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, start, os.SEEK_SET)

    async def acquire(self, keys: Sequence[str], timeout: float) -> list[int]:
        """Lock the bytes of ``keys`` in ascending order, waiting at most ``timeout`` seconds
        in all (StateConflict then); the bytes held, for :meth:`release`."""
        deadline = asyncio.get_running_loop().time() + timeout
        held: list[int] = []
        try:
            for start in sorted({offset(k) for k in keys}):
                await self._take(start, deadline, timeout)
                held.append(start)
        except BaseException:
            self.release(held)
            raise
        return held

    def release(self, held: Sequence[int]) -> None:
        """Unlock bytes that :meth:`acquire` locked."""
        for start in held:
            self._unlock(start)

    async def _take(self, start: int, deadline: float, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                pending = self._pending.get(start)
                if pending is not None:  # an abandoned wait's thread is still on this byte
                    await asyncio.shield(pending)
                if self._lock(start, wait=False):
                    return
                done: asyncio.Future[BaseException | None] = loop.create_future()
                threading.Thread(
                    target=self._wait, args=(start, loop, done), name="tgrunner-state-lock",
                    daemon=True,
                ).start()  # fmt: skip
                try:
                    error = await asyncio.shield(done)
                except BaseException:
                    # A thread in F_SETLKW cannot be stopped: it lets go once it has the byte.
                    self._pending[start] = done
                    done.add_done_callback(lambda f: self._abandoned(start, f))
                    raise
                if error is not None:
                    raise error
        except TimeoutError:
            raise StateConflict(
                f"a key lock in {self.path} was not free within lock_timeout ({timeout:g} s)"
            ) from None

    def _wait(
        self,
        start: int,
        loop: asyncio.AbstractEventLoop,
        done: asyncio.Future[BaseException | None],
    ) -> None:
        try:
            self._lock(start, wait=True)
            error: BaseException | None = None
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(_settle, done, error)
        except RuntimeError:  # the loop has closed; the lock goes with the descriptor
            pass

    def _abandoned(self, start: int, done: asyncio.Future[BaseException | None]) -> None:
        if self._pending.get(start) is done:
            del self._pending[start]
        if done.result() is None:
            try:
                self._unlock(start)
            except OSError:  # closed meanwhile: the lock went with the descriptor
                pass


def _settle(done: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not done.done():
        done.set_result(error)
