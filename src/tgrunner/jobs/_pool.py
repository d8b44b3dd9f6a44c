"""The process pool behind :func:`~tgrunner.jobs.offload`: pool processes, each fed by a thread.

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot end one stuck call. Killing one
of its processes marks the whole executor broken (every pending future fails, and nothing
can be submitted again), and a cancelled future whose call already runs keeps its process
busy until the call returns, possibly never. Here each pool process is one slot, and a slot
whose call ran past its timeout or was cancelled is SIGKILLed and replaced on its own while
the others go on.

**Processes.** ``python -P _child.py IN_FD OUT_FD PARENT`` through ``subprocess.Popen``: a
fresh interpreter (fork + exec, no fork of a process that runs an event loop and threads),
given the parent's ``sys.path``, that never imports the user's ``__main__`` (as
multiprocessing's spawn does). See :mod:`._child`.

**One thread per slot.** The thread spawns its pool process, takes calls from the pool's
queue one at a time, writes each to the process's pipe and waits (``poll``) for the answer,
the call's timeout, or a wake-up (cancel, shutdown). Its result is unpickled in that thread
and handed to the caller's event loop with ``call_soon_threadsafe``. So:

- the pool belongs to no event loop: any loop (tests' ``asyncio.run``, PTB's
  ``run_polling`` on a loop of its own, uvloop) can await it, and a loop that closed leaves
  it working;
- spawning a replacement (tens of milliseconds) and unpickling a large result never run on
  the event loop;
- a process is killed, waited for and replaced only by its own thread, so a PID is never
  signalled after it was reaped (and perhaps reused);
- the cost is one thread hop per call (tens of microseconds), small beside work worth
  sending to another process.

**Queue.** Calls wait in one FIFO queue for a free slot. It is not bounded here: each entry
is one awaiting coroutine, and the callers bound it (the runtime's concurrency limit, 500 by
default). A call's ``timeout`` counts from the moment its pool process receives it, not
while it queues.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from tgrunner.errors import OffloadCrashed, OffloadError, OffloadTimeout
from tgrunner.jobs._calls import (
    CANCELLED,
    DONE,
    QUEUED,
    RUNNING,
    Call,
    answer,
    deliver,
    describe_exit,
)
from tgrunner.jobs._child import CALL, HEADER, INIT, READY, write_frame

__all__ = ["CHILD", "START_TIMEOUT", "Pool", "Slot"]

log = logging.getLogger("tgrunner.jobs.offload")

CHILD = str(Path(__file__).with_name("_child.py"))
"""The script each pool process runs."""

START_TIMEOUT = 30.0
"""Seconds a new pool process may take to answer READY."""
_EXIT_WAIT = 1.0  # seconds an idle process may take to exit once its pipe closed
_LINGER = 1.0  # seconds a process that closed its end may take to exit before SIGKILL
_BACKOFF_MAX = 5.0  # seconds between two attempts to start a process, at most
_FAILED_STARTS = 3  # start-ups failed in a row before calls are failed for it
_READ = 1 << 20


class Slot:
    """One pool process and the thread that feeds it (see the module docstring)."""

    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self._to = self._from = -1
        self._lock = threading.Lock()  # guards the wake pipe against its closing
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.thread = threading.Thread(
            target=self._serve, name=f"tgrunner-offload-{index}", daemon=True
        )

    @property
    def pid(self) -> int | None:
        proc = self.proc
        return None if proc is None else proc.pid

    def wake(self) -> None:
        """Make the thread look at its call's state and the pool's (any thread may call)."""
        with self._lock:
            if self._wake_w >= 0:
                with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
                    os.write(self._wake_w, b"!")

    # -- the thread ------------------------------------------------------------------------------

    def _serve(self) -> None:
        failures = 0  # start-ups failed in a row
        try:
            while not self.pool.closing:
                if self.proc is None:
                    problem = self._spawn()
                    if problem is not None and self.pool.closing:
                        break
                    if problem is not None:
                        failures += 1
                        self._failed_start(problem, failures)
                        continue
                    failures = 0
                call = self.pool.take(self)
                if call is None:
                    break
                self._run(call)
        except BaseException:  # a bug here must not leave the pool process behind
            log.exception("offload pool thread %d failed", self.index)
        finally:
            self._retire()
            with self._lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1

    def _failed_start(self, problem: str, failures: int) -> None:
        """A pool process did not start: try again, after a pause that doubles each time.
        From the :data:`_FAILED_STARTS`-th failure in a row on, each one fails the next call
        too: calls must not wait for a pool that cannot start."""
        log.error("could not start an offload pool process (%d in a row): %s", failures, problem)
        if failures >= _FAILED_STARTS:
            call = self.pool.take(self)
            if call is not None and self.pool.finish(call):
                deliver(call, error=OffloadError(
                    f"{call.name} could not run: no offload pool process could be started "
                    f"({problem})"
                ))  # fmt: skip
        self.pool.stopping.wait(min(0.05 * 2**failures, _BACKOFF_MAX))

    def _spawn(self) -> str | None:
        """Start a pool process and wait for READY; None when it is ready, else why not."""
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        argv = [sys.executable, *subprocess._args_from_interpreter_flags(), "-P", CHILD]  # type: ignore[attr-defined]
        try:
            proc = subprocess.Popen(
                [*argv, str(to_r), str(from_w), str(os.getpid())],
                pass_fds=(to_r, from_w),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            for fd in (to_w, from_r):
                os.close(fd)
            return f"{type(exc).__name__}: {exc}"
        finally:
            os.close(to_r)
            os.close(from_w)
        self.proc, self._to, self._from = proc, to_w, from_r
        try:
            write_frame(to_w, INIT, pickle.dumps({"sys_path": list(sys.path)}))
        except OSError:
            pass  # it died at once: the wait below sees the EOF
        got = self._wait(time.monotonic() + START_TIMEOUT, None)
        if isinstance(got, tuple) and got[0] == READY:
            log.debug("offload pool process %d started (pid %d)", self.index, proc.pid)
            return None
        code = self._kill(_LINGER if got == "eof" else 0.0)
        if got == "woken":  # the pool is closing
            return "the pool was shut down"
        if got == "timeout":
            return f"it did not answer within {START_TIMEOUT:g} s"
        return f"it {describe_exit(code)} at start-up"

    def _wait(self, deadline: float | None, call: Call | None) -> tuple[int, bytes] | str:
        """The next frame from the process, or ``"eof"``, ``"timeout"`` (``deadline``, in
        ``time.monotonic()``, passed) or ``"woken"`` (``call`` was cancelled, or the pool is
        closing)."""
        poller = select.poll()
        poller.register(self._from, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        buffer = bytearray()
        while True:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            events = poller.poll(None if wait is None else wait * 1000 + 1)
            if not events and deadline is not None and time.monotonic() >= deadline:
                return "timeout"
            for fd, _ in events:
                if fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    if self.pool.closing or (call is not None and call.state == CANCELLED):
                        return "woken"
                    continue
                chunk = os.read(self._from, _READ)
                if not chunk:
                    return "eof"
                buffer += chunk
                if len(buffer) >= HEADER.size:
                    length, kind = HEADER.unpack_from(buffer)
                    if len(buffer) >= HEADER.size + length:
                        return kind, bytes(buffer[HEADER.size : HEADER.size + length])

    def _send(self, call: Call) -> int | None:
        """Write ``call`` to the pool process; its PID, or None when no process could take
        it (the call then has its error)."""
        code: int | None = None
        for _ in range(2):
            if self.proc is None and self._spawn() is not None:
                break
            assert self.proc is not None
            pid = self.proc.pid
            try:
                write_frame(self._to, CALL, call.payload)
                return pid
            except OSError:
                # It died while idle (the OOM killer, a kill by hand): the call never ran
                # there, so a replacement may take it.
                code = self._kill(_LINGER)
                log.warning("offload pool process pid %d %s while idle; replacing it", pid,
                            describe_exit(code))  # fmt: skip
        if self.pool.finish(call):
            deliver(call, error=OffloadCrashed(
                f"{call.name} could not run: its pool process died before it got the call, "
                "and no replacement could take it", code
            ))  # fmt: skip
        return None

    def _run(self, call: Call) -> None:
        pid = self._send(call)
        if pid is None:
            return
        deadline = None if call.timeout is None else time.monotonic() + call.timeout
        got = self._wait(deadline, call)
        if isinstance(got, tuple):
            if self.pool.finish(call) and not answer(call, pid, *got):
                self._kill()  # a corrupt stream: this process cannot be trusted
            return
        # After an EOF the process is ending by itself: let it, so that its own exit code
        # (or signal) is the one reported.
        code = self._kill(_LINGER if got == "eof" else 0.0)
        if got == "woken" and call.state == CANCELLED:
            log.debug("%s was cancelled; its pool process (pid %d) was killed", call.name, pid)
            return
        error: OffloadError
        if got == "woken":
            error = OffloadError(f"the offload pool was shut down while {call.name} ran")
        elif got == "timeout":
            assert call.timeout is not None
            error = OffloadTimeout(
                f"{call.name} ran past its timeout of {call.timeout:g} s; its pool process "
                f"(pid {pid}) was killed and is being replaced",
                call.timeout,
            )
        else:
            error = OffloadCrashed(
                f"the offload pool process running {call.name} (pid {pid}) "
                f"{describe_exit(code)}; it is being replaced, other calls go on",
                code,
            )
            log.warning("%s", error)
        if self.pool.finish(call):
            deliver(call, error=error)

    def _kill(self, linger: float = 0.0) -> int | None:
        """SIGKILL the process (after ``linger`` seconds, if it has not ended by then), reap
        it, close its pipes; its exit code. The next call starts a replacement."""
        proc = self.proc
        if proc is None:
            return None
        try:
            proc.wait(linger)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_pipes()
        self.proc = None
        return proc.returncode

    def _retire(self) -> None:
        """End the process at shutdown: an idle one exits once its pipe closes."""
        proc = self.proc
        if proc is None:
            return
        if self._to >= 0:
            os.close(self._to)
            self._to = -1
        try:
            proc.wait(_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._close_pipes()
        self.proc = None

    def _close_pipes(self) -> None:
        for fd in (self._to, self._from):
            if fd >= 0:
                os.close(fd)
        self._to = self._from = -1


class Pool:
    """``size`` pool processes, started at once, each fed by its own thread; see the module
    docstring. ``close()`` ends them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pid = os.getpid()  # a forked copy of this object in another process is not used
        self.closing = False
        self.stopping = threading.Event()
        self._lock = threading.Lock()  # guards every call's state, and closing
        self._queue: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._slots = [Slot(self, i) for i in range(size)]
        for slot in self._slots:
            slot.thread.start()

    def pids(self) -> list[int]:
        """The PIDs of the live pool processes (a replacement may be starting)."""
        return [pid for pid in (slot.pid for slot in self._slots) if pid is not None]

    def submit(self, call: Call) -> None:
        """Queue ``call``; OffloadError when the pool is closing."""
        with self._lock:
            if self.closing:
                raise OffloadError(f"{call.name} was not sent: the offload pool is shutting down")
            self._queue.put(call)

    def take(self, slot: Slot) -> Call | None:
        """The next call for ``slot`` to run (None: the pool is closing)."""
        while True:
            call = self._queue.get()
            if call is None:
                return None
            with self._lock:
                if call.state == CANCELLED:
                    continue
                if not self.closing:
                    call.state, call.slot = RUNNING, slot
                    return call
                call.state = DONE
            deliver(call, error=OffloadError(f"{call.name} was not run: the pool shut down"))

    def finish(self, call: Call) -> bool:
        """Mark ``call`` done; False if it was cancelled (nobody wants its outcome)."""
        with self._lock:
            if call.state != RUNNING:
                return False
            call.state = DONE
            return True

    def cancel(self, call: Call) -> None:
        """The caller stopped waiting: drop ``call`` if queued; kill its process if it runs."""
        with self._lock:
            state = call.state
            if state not in (QUEUED, RUNNING):
                return
            call.state = CANCELLED
            slot = call.slot if state == RUNNING else None
        if slot is not None:
            slot.wake()

    def close(self, timeout: float = 10.0) -> None:
        """Fail queued calls, kill running ones, end every pool process; wait up to
        ``timeout`` seconds for it. Blocking; safe to call twice."""
        with self._lock:
            self.closing = True
        self.stopping.set()
        for _ in self._slots:
            self._queue.put(None)
        for slot in self._slots:
            slot.wake()
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            if slot.thread is not threading.current_thread():
                slot.thread.join(max(deadline - time.monotonic(), 0.0))
        while True:  # what no slot took: the pool is gone, say so
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                break
            if call is None:
                continue
            with self._lock:
                queued = call.state == QUEUED
                call.state = DONE
            if queued:
                deliver(call, error=OffloadError(f"{call.name} was not run: the pool shut down"))
