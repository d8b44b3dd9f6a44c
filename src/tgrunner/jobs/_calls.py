"""One :func:`~tgrunner.jobs.offload` call as the pool sees it, and how its outcome reaches
the caller: on the caller's event loop (``call_soon_threadsafe``), from the pool's thread.

A call's state moves ``queued -> running -> done``, or to ``cancelled`` from either of the
first two; the pool changes it under its lock, and only the move to ``done`` delivers an
outcome, so each call ends exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
from typing import Any

from tgrunner.errors import OffloadError
from tgrunner.jobs._child import BROKEN, RAISED, RESULT

__all__ = [
    "CANCELLED",
    "DONE",
    "QUEUED",
    "RUNNING",
    "Call",
    "answer",
    "deliver",
    "describe_exit",
    "rebuild_error",
]

QUEUED, RUNNING, DONE, CANCELLED = "queued", "running", "done", "cancelled"


class Call:
    """One ``offload()`` call: what to send, and the future its caller awaits on ``loop``."""

    __slots__ = ("future", "loop", "name", "payload", "slot", "state", "timeout")

    def __init__(
        self,
        name: str,
        payload: bytes,
        timeout: float | None,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.name = name
        self.payload = payload
        self.timeout = timeout
        self.loop = loop
        self.future = future
        self.state = QUEUED
        self.slot: Any = None  # the pool's slot running it, while it runs (set by the pool)


def describe_exit(code: int | None) -> str:
    """``"exited with code 3"``, ``"was killed by SIGKILL"``, or ``"ended"`` (unknown)."""
    if code is None:
        return "ended"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def deliver(call: Call, result: Any = None, error: BaseException | None = None) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop closed: nobody waits
        call.loop.call_soon_threadsafe(_settle, call.future, result, error)


def rebuild_error(name: str, pid: int, payload: bytes) -> BaseException:
    """The exception to raise in the caller for a RAISED answer: the pool process's own
    exception when it unpickles (with its traceback text as a note), else an OffloadError."""
    blob, kind, message, text = pickle.loads(payload)
    note = f"raised in the offload pool process (pid {pid}) running {name}:\n{text.rstrip()}"
    problem = "it could not be pickled there"
    if blob is not None:
        try:
            exc = pickle.loads(blob)
        except Exception as err:
            problem = f"it could not be unpickled here ({type(err).__name__}: {err})"
        else:
            if isinstance(exc, Exception) and not isinstance(exc, StopIteration):
                exc.add_note(note)
                return exc
            problem = "it is not an Exception that a coroutine may raise"
    error = OffloadError(f"{name} raised {kind}: {message} ({problem})")
    error.add_note(note)
    return error


def answer(call: Call, pid: int, kind: int, payload: bytes) -> bool:
    """Give ``call``'s caller the outcome a pool process (``pid``) answered; False when the
    answer is of no known kind (the stream is corrupt)."""
    if kind == RESULT:
        try:
            result = pickle.loads(payload)
        except Exception as exc:
            deliver(call, error=OffloadError(
                f"the result of {call.name} cannot be unpickled here "
                f"({type(exc).__name__}: {exc})"
            ))  # fmt: skip
            return True
        deliver(call, result)
    elif kind == RAISED:
        deliver(call, error=rebuild_error(call.name, pid, payload))
    elif kind == BROKEN:
        deliver(call, error=OffloadError(payload.decode("utf-8", "replace")))
    else:
        deliver(call, error=OffloadError(f"{call.name}: a corrupt answer (kind {kind})"))
        return False
    return True
