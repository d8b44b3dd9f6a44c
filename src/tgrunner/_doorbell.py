"""Doorbells: how a process wakes the processes that wait on a SQLite file they share, at once.

SQLite has no notification between processes. Instead, each waiting process owns a FIFO in a
folder beside the file (``jobs.sqlite.wake/``), and whoever changes what they wait for writes
one byte into every FIFO there after its commit (:meth:`Doorbell.ring`). A waiting process
sleeps on its FIFO in its event loop (:meth:`Listener.wait`), with no polling.

The embedded job queue rings when it makes a job runnable (an enqueue, a retry, a release, a
failure scheduled again), waking idle job workers; ``tgrunner broadcast pause|resume|cancel``
rings the broadcast outbox's, waking the process that sends the broadcast.

- **No lost wake-up.** A listener drains its FIFO when it wakes, before its worker looks for
  a job; a ring that comes after the drain leaves a byte that ends the next wait at once. A
  job committed before a ring is seen by the look that follows it.
- **Every waiter is woken** (one FIFO each): a worker that finds nothing goes back to sleep.
  The claim does a cheap read first, so those looks take no write lock.
- **Dead listeners.** Opening the FIFO of a process that died fails with ``ENXIO`` (no
  reader): the ringer deletes it. A listener creates its FIFO under a dot-name, opens it,
  then renames it, so a ringer never sees one nobody has opened yet.
- **Cost.** A ring is one ``scandir`` and an open, a write and a close per listener (a few
  µs each); with no listener it is one failed ``scandir``.
- **Where it does not work** (no ``os.mkfifo``, as on Windows, or a folder that cannot be
  written), :func:`listener_for` returns None and the worker falls back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import secrets
from pathlib import Path

__all__ = ["Doorbell", "Listener", "listener_for", "wake_folder"]

log = logging.getLogger(__name__)


def wake_folder(db_path: Path) -> Path:
    """The folder of the FIFOs of the file ``db_path``: ``<db_path>.wake``."""
    return db_path.with_name(db_path.name + ".wake")


class Doorbell:
    """The ringing side, for the file whose FIFO folder is ``folder``. Thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def ring(self) -> int:
        """Wake every listener; return how many were rung. Never raises."""
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return 0  # no folder: nobody ever waited here
        rung = 0
        for entry in entries:
            if entry.name.startswith("."):
                continue  # a FIFO being created
            try:
                fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # nobody reads it: its process is gone
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                continue
            try:
                os.write(fd, b"\x01")
                rung += 1
            except BlockingIOError:
                rung += 1  # full: rung already, and not read yet
            except OSError:
                pass
            finally:
                os.close(fd)
        return rung


class Listener:
    """One waiting process's FIFO in ``folder`` (created with it). Use from one event loop;
    :meth:`close` when done (safe to call twice)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        temp = folder / f".{name}"
        os.mkfifo(temp, 0o660)
        try:
            # O_RDWR: the FIFO always has a writer (this fd), so it never reads as EOF, and a
            # ringer's non-blocking open finds a reader.
            self._fd: int | None = os.open(temp, os.O_RDWR | os.O_NONBLOCK)
            self.path = folder / name
            os.rename(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def drain(self) -> bool:
        """Read every byte waiting; True when there was one (a ring since the last drain)."""
        rung = False
        while self._fd is not None:
            try:
                chunk = os.read(self._fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            rung = True
        return rung

    async def wait(self, timeout: float) -> bool:
        """Return True once rung (draining the FIFO), or False after ``timeout`` seconds."""
        if self.drain():
            return True
        if self._fd is None or timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        rung = loop.create_future()

        def readable() -> None:
            if not rung.done():
                rung.set_result(None)

        fd = self._fd
        loop.add_reader(fd, readable)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await rung
        finally:
            loop.remove_reader(fd)
        return self.drain()

    def close(self) -> None:
        """Delete the FIFO and close it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(fd)


def listener_for(db_path: Path, who: str = "job worker") -> Listener | None:
    """A listener for the file ``db_path``, or None (with a log line naming ``who`` waits,
    default ``"job worker"``) where FIFOs cannot be made: the caller then polls."""
    if not hasattr(os, "mkfifo"):
        return None
    try:
        return Listener(wake_folder(db_path))
    except OSError as exc:
        log.warning(
            "%s: no wake-up FIFO in %s (%s); polling %s instead",
            who,
            wake_folder(db_path),
            exc,
            db_path.name,
        )
        return None
