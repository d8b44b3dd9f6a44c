"""A pool process of :func:`~tgrunner.jobs.offload`: ``python -P _child.py IN_FD OUT_FD PARENT``.

Started by the pool (:mod:`tgrunner.jobs._pool`), never by hand. It is run as a script, by
its path, and imports nothing of tgrunner: a pool process costs an interpreter plus the
modules its functions import, no more (``import tgrunner`` alone takes about 0.2 s).

Its life:

1. Read ``INIT`` (the parent's ``sys.path``) from ``IN_FD``, answer ``READY``.
2. For each ``CALL``: import the function by module and name (or unpickle it), unpickle the
   arguments, call it, and answer with one frame: ``RESULT`` (the pickled result),
   ``RAISED`` (the exception, pickled when it can be, with its type, message and traceback as
   text) or ``BROKEN`` (one line: what kept the call from running or its result from
   coming back).
3. EOF on ``IN_FD`` (the pool closed its end): exit 0.

It never outlives the parent: on Linux the kernel sends it SIGKILL when the parent's thread
that started it ends (``PR_SET_PDEATHSIG``), whatever the function is doing. A thread also
waits for the hang-up of ``IN_FD`` (the parent's end closes when the parent dies) and exits:
the only guard off Linux, and a slower one, since it runs only when the function lets other
threads run (a C call that holds the GIL delays it until it returns).

SIGINT and SIGTERM are ignored: Ctrl+C and a service manager reach the whole process group,
and when a pool process ends is the parent's decision.

A frame is ``<payload length: u64 LE> <kind: u8> <payload>``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import select
import signal
import struct
import sys
import threading
import traceback
from typing import Any

HEADER = struct.Struct("<QB")
"""A frame's header: the payload's length, then its kind."""

# Parent -> pool process.
INIT = 1
CALL = 2
# Pool process -> parent.
READY = 10
RESULT = 11
RAISED = 12
BROKEN = 13

_CHUNK = 1 << 20


def read_frame(fd: int) -> tuple[int, bytes] | None:
    """One whole frame from a blocking ``fd``; None at EOF."""
    head = _read_exact(fd, HEADER.size)
    if head is None:
        return None
    length, kind = HEADER.unpack(head)
    body = _read_exact(fd, length)
    return None if body is None else (kind, body)


def _read_exact(fd: int, size: int) -> bytes | None:
    parts = []
    while size:
        chunk = os.read(fd, min(size, _CHUNK))
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def write_frame(fd: int, kind: int, payload: bytes) -> None:
    """Write one frame to a blocking ``fd``, all of it."""
    view = memoryview(HEADER.pack(len(payload), kind) + payload)
    while view:
        view = view[os.write(fd, view) :]


def _line(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "(its message cannot be shown)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _raised(exc: BaseException) -> bytes:
    """The RAISED payload: (pickled exception or None, type name, message, traceback text)."""
    tb = exc.__traceback__
    # The first frame is run()'s own call of the function: not the user's.
    shown = tb.tb_next if tb is not None and tb.tb_next is not None else tb
    text = "".join(traceback.format_exception(type(exc), exc, shown))
    try:
        blob: bytes | None = pickle.dumps(exc, pickle.HIGHEST_PROTOCOL)
    except Exception:
        blob = None
    kind = type(exc)
    try:
        message = str(exc)
    except Exception:
        message = "(its message cannot be shown)"
    return pickle.dumps((blob, f"{kind.__module__}.{kind.__qualname__}", message, text))


def run(payload: bytes) -> tuple[int, bytes]:
    """Run one CALL; return the answer's kind and payload."""
    # name: for messages; ref: (module, qualname) of a function sent by reference, else None
    # and fn_blob is the pickled callable (a functools.partial, a bound method).
    name, ref, fn_blob, args_blob = pickle.loads(payload)
    try:
        fn = _resolve(*ref) if ref is not None else pickle.loads(fn_blob)
    except Exception as exc:
        return BROKEN, (
            f"the pool process cannot load {name} ({_line(exc)}); it imports it from the "
            "bot's sys.path, so define it in an importable module"
        ).encode()
    try:
        args, kwargs = pickle.loads(args_blob)
    except Exception as exc:
        return BROKEN, (
            f"the pool process cannot unpickle the arguments of {name} ({_line(exc)}); "
            "define the classes of the arguments in an importable module, not in __main__"
        ).encode()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit too: this process serves the next call
        return RAISED, _raised(exc)
    del args, kwargs
    try:
        return RESULT, pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return BROKEN, (
            f"the result of {name}, a {type(result).__module__}.{type(result).__qualname__}, "
            f"cannot be pickled ({_line(exc)}); return plain data (numbers, str, bytes, "
            "lists, dicts, instances of module-level classes)"
        ).encode()


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the line above could take effect
        os._exit(1)


def _watch_parent(fd: int) -> None:
    """Exit once the parent's end of ``fd`` is closed, even while a function runs."""
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: only POLLHUP / POLLERR come back
    while True:
        for _, events in poller.poll():
            if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                os._exit(0)


def main(argv: list[str]) -> int:
    """Serve calls on the fds named by ``argv`` (``IN_FD OUT_FD PARENT_PID``)."""
    if len(argv) != 3 or not all(a.isdigit() for a in argv):
        sys.stderr.write("tgrunner offload: this script is started by the pool, not by hand\n")
        return 2
    in_fd, out_fd, parent = (int(a) for a in argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _die_with_parent(parent)
    # Processes the functions start must not hold our pipes open after we die.
    os.set_inheritable(in_fd, False)
    os.set_inheritable(out_fd, False)
    threading.Thread(target=_watch_parent, args=(in_fd,), daemon=True).start()
    frame = read_frame(in_fd)
    if frame is None or frame[0] != INIT:
        return 1
    init = pickle.loads(frame[1])
    sys.path[:] = [p for p in init["sys_path"] if isinstance(p, str)]
    write_frame(out_fd, READY, b"")
    while True:
        frame = read_frame(in_fd)
        if frame is None:
            return 0
        kind, payload = run(frame[1])
        del frame
        try:
            write_frame(out_fd, kind, payload)
        except BrokenPipeError:
            return 0
        del payload


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
