"""The wire between the supervisor and a worker process: length-prefixed frames over pipes.

A frame is a 13-byte header, then its payload::

    <payload length: u32 LE> <kind: u8> <token: u64 LE> <payload>

The token names one update in flight (chosen by the supervisor, unique per supervisor), or is
0 for frames about no update. Payloads are raw bytes: an update as JSON (orjson), a small JSON
control record, or an error line. Nothing is pickled, so nothing of the user's code crosses
the wire but the update itself.

Supervisor to worker: ``INIT`` (the worker's JSON configuration, first and once), ``RUN``
(token, update JSON), ``CANCEL`` (token), ``STOP`` (drain, run the shutdown hook, exit 0).

Worker to supervisor: ``READY`` (the bot is loaded and started; JSON with the worker's pid),
``FATAL`` (start-up failed; the error line, then, after a NUL byte, the trimmed
traceback when the user's code raised; the worker then exits 2), ``DONE`` (token; the
payload is empty for success, :data:`FAILED` + JSON ``{"error", "traceback"}`` when the handler
raised, :data:`CANCELLED` when it was cancelled), ``HEARTBEAT`` (the worker's event loop runs),
``METRICS`` (only when INIT says ``"metrics": true``: the worker's
:meth:`~tgrunner.observability.Metrics.snapshot`, about every second and at exit).

Both directions are batched: :class:`FrameWriter` gathers every frame sent during one turn of
the event loop and writes them with one ``os.write``; :class:`FrameReader` splits whatever one
``os.read`` returned into every whole frame in it, keeping a partial frame for the next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Callable

__all__ = [
    "ANSWER",
    "CANCEL",
    "CANCELLED",
    "DONE",
    "FAILED",
    "FATAL",
    "HEADER",
    "HEARTBEAT",
    "INIT",
    "KINDS",
    "MAX_PAYLOAD",
    "METRICS",
    "READY",
    "RUN",
    "STOP",
    "Frame",
    "FrameReader",
    "FrameWriter",
    "WireError",
    "encode",
    "read_frames",
    "set_pipe_size",
]

log = logging.getLogger(__name__)

# Supervisor -> worker.
INIT = 1
RUN = 2
CANCEL = 3
STOP = 4
# Worker -> supervisor.
READY = 10
FATAL = 11
DONE = 12
HEARTBEAT = 13
METRICS = 14

KINDS = frozenset({INIT, RUN, CANCEL, STOP, READY, FATAL, DONE, HEARTBEAT, METRICS})
"""Every kind of frame; any other kind in a stream means the stream is corrupt."""

FAILED = b"\x01"
"""The first byte of a ``DONE`` payload whose handler raised (JSON follows)."""
CANCELLED = b"\x02"
"""The whole ``DONE`` payload of a handler that was cancelled."""
ANSWER = b"\x03"
"""The first byte of a ``DONE`` payload whose handler left a webhook answer (JSON follows;
see :mod:`tgrunner.answers`)."""

HEADER = struct.Struct("<IBQ")
"""payload length, kind, token."""

MAX_PAYLOAD = 64 * 1024 * 1024
"""The largest payload a reader accepts (an update is far smaller): above it, the stream is
taken as corrupt rather than buffered."""

# One read takes at most this many bytes; a busy pipe is read again on the next wakeup.
_READ_SIZE = 256 * 1024
# What each pipe is asked to hold (Linux: F_SETPIPE_SZ); the default 64 KiB fills at ~100
# updates.
_PIPE_SIZE = 1024 * 1024

Frame = tuple[int, int, bytes]
"""``(kind, token, payload)``."""


class WireError(Exception):
    """The byte stream is not a stream of frames (a bad kind or an impossible length)."""


def encode(kind: int, token: int = 0, payload: bytes = b"") -> bytes:
    """One frame as bytes."""
    return HEADER.pack(len(payload), kind, token) + payload


class FrameReader:
    """Split a byte stream into frames, whatever the chunks it comes in.

    ``feed(data)`` returns the whole frames completed by ``data`` in order; a partial frame is
    kept for the next call. Raises :class:`WireError` on a corrupt stream.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max = max_payload

    @property
    def pending(self) -> int:
        """Bytes of a partial frame held for the next ``feed``."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        if buf:
            buf += data
            view = memoryview(buf)
        else:
            view = memoryview(data)
        frames: list[Frame] = []
        end = len(view)
        pos = 0
        size = HEADER.size
        unpack = HEADER.unpack_from
        limit = self._max
        while end - pos >= size:
            length, kind, token = unpack(view, pos)
            if kind not in KINDS or length > limit:
                view.release()
                raise WireError(f"bad frame header at byte {pos}: kind {kind}, length {length}")
            stop = pos + size + length
            if stop > end:
                break
            frames.append((kind, token, view[pos + size : stop].tobytes()))
            pos = stop
        rest = view[pos:].tobytes() if pos < end else b""
        view.release()
        if buf:
            del buf[:]
        if rest:
            buf += rest
        return frames


def read_frames(reader: FrameReader, fd: int) -> tuple[list[Frame], bool]:
    """Read what ``fd`` holds now (one read) and split it: ``(frames, eof)``.

    A non-blocking fd with nothing to read gives ``([], False)``.
    """
    try:
        data = os.read(fd, _READ_SIZE)
    except (BlockingIOError, InterruptedError):
        return [], False
    except OSError:  # the other end is gone in a way a read reports (EIO, EBADF)
        return [], True
    if not data:
        return [], True
    return reader.feed(data), False


def set_pipe_size(fd: int) -> None:
    """Ask the kernel for a 1 MiB pipe buffer (Linux), so bursts need fewer wakeups."""
    import fcntl

    option = getattr(fcntl, "F_SETPIPE_SZ", None)
    if option is None:
        return
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
        fcntl.fcntl(fd, option, _PIPE_SIZE)


class FrameWriter:
    """Frames to a non-blocking pipe, batched: one ``os.write`` per turn of the event loop.

    ``send()`` never blocks. What the pipe cannot take now is kept and written when the pipe
    is writable again (``loop.add_writer``). Once the other end is gone (``EPIPE``), frames
    are dropped and ``on_broken()`` is called once: the reader of the same process sees the
    end too, and acts on it.
    """

    __slots__ = (
        "_broken",
        "_buf",
        "_closed",
        "_fd",
        "_loop",
        "_on_broken",
        "_scheduled",
        "_watching",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        on_broken: Callable[[], None] | None = None,
    ) -> None:
        self._loop = loop
        self._fd = fd
        self._buf = bytearray()
        self._scheduled = False
        self._watching = False
        self._broken = False
        self._closed = False
        self._on_broken = on_broken

    @property
    def buffered(self) -> int:
        """Bytes sent and not yet written to the pipe."""
        return len(self._buf)

    def send(self, kind: int, token: int = 0, payload: bytes = b"") -> None:
        """Queue one frame; it is written at the end of this turn of the event loop."""
        if self._broken or self._closed:
            return
        buf = self._buf
        buf += HEADER.pack(len(payload), kind, token)
        if payload:
            buf += payload
        if not self._scheduled and not self._watching:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        buf = self._buf
        if not buf or self._broken or self._closed:
            return
        try:
            written = os.write(self._fd, buf)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:  # EPIPE: the reader is gone
            self._break()
            return
        del buf[:written]
        if buf:
            if not self._watching:
                self._watching = True
                self._loop.add_writer(self._fd, self._writable)
        elif self._watching:
            self._watching = False
            self._loop.remove_writer(self._fd)

    def _writable(self) -> None:
        self._flush()

    def _break(self) -> None:
        self._broken = True
        self._buf.clear()
        if self._watching:
            self._watching = False
            self._loop.remove_writer(self._fd)
        if self._on_broken is not None:
            self._on_broken()

    def flush_blocking(self, timeout: float) -> None:
        """Write what is left, waiting up to ``timeout`` seconds in all (at exit)."""
        import select

        deadline = self._loop.time() + timeout
        while self._buf and not self._broken and not self._closed:
            left = deadline - self._loop.time()
            if left <= 0:
                return
            select.select([], [self._fd], [], left)
            self._flush()

    def close(self) -> None:
        """Stop writing and close the fd (what is not written yet is dropped). Safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._watching:
            self._watching = False
            self._loop.remove_writer(self._fd)
        self._buf.clear()
        with contextlib.suppress(OSError):
            os.close(self._fd)
