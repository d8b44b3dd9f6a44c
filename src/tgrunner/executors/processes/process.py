"""One worker process as the supervisor sees it: its pipes, its exit, its heartbeat watchdog.

**How it is started.** ``python -m tgrunner.executors.processes.worker IN_FD OUT_FD`` through
``subprocess.Popen`` with ``pass_fds``, not ``multiprocessing``: a fresh interpreter that
inherits no event loop, no threads, no locks held mid-fork and none of the supervisor's open
sockets (``close_fds``), and that never re-imports the user's ``__main__`` (``multiprocessing``'s
spawn does, and a script without an ``if __name__ == "__main__":`` guard then starts workers
of workers). The worker loads the bot from its import string. The token travels in the first
frame (``INIT``), not on the command line, where ``ps`` would show it.

**How a death is seen.** At once, with no periodic ping: the kernel closes a dead process's
pipes, so the supervisor's read end gives EOF, and the process's pidfd (Linux) becomes
readable when it exits. Whichever comes first counts. A worker that closes its pipe while
still running cannot report anything, so it is killed.

**How a hang is seen.** A ready worker sends a frame (a heartbeat at least) from its own event
loop every ``heartbeat_timeout / 5`` seconds. One silent for ``heartbeat_timeout`` (or not
ready within ``startup_grace``) is sent SIGTERM, then SIGKILL after ``kill_grace``; its death
is then seen as above. Before declaring a hang the pipe is read once more, in case it is the
supervisor's own event loop that was late.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tgrunner.executors.processes.options import WorkerOptions
from tgrunner.executors.processes.wire import (
    INIT,
    STOP,
    Frame,
    FrameReader,
    FrameWriter,
    WireError,
    read_frames,
    set_pipe_size,
)

__all__ = ["WORKER_MODULE", "State", "WorkerProcess", "describe_exit"]

log = logging.getLogger("tgrunner.executors.processes")

WORKER_MODULE = "tgrunner.executors.processes.worker"
"""The module run with ``python -m`` in each worker process."""

# Seconds a worker may live on after its pipe closed (it exits within microseconds).
_LINGER = 0.05
# The directory holding the tgrunner package, so ``-m`` finds it however the supervisor did.
_TGRUNNER_ROOT = str(Path(__file__).resolve().parents[3])


class State(enum.Enum):
    """The life of a worker process."""

    STARTING = "starting"  # spawned, loading the bot
    READY = "ready"  # takes updates
    STOPPING = "stopping"  # told to STOP: drains, then exits
    GONE = "gone"  # dead (its pipe closed or it exited)


def describe_exit(code: int | None) -> str:
    """``"exited with code 3"``, ``"was killed by SIGKILL"``, or ``"closed its pipe"``."""
    if code is None:
        return "closed its pipe"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


class WorkerProcess:
    """A worker process of slot ``slot``, started by :meth:`spawn`.

    The supervisor is told of what the worker sends through ``on_frames(worker, frames)``,
    of its death, once, through ``on_gone(worker)``, and of a missed heartbeat (before it is
    terminated) through ``on_hung(worker, what)``. ``sent`` holds what the supervisor
    sent to this process and is not finished (the supervisor owns its contents). ``exited``
    resolves with the exit code once the process is reaped.
    """

    def __init__(
        self,
        slot: int,
        options: WorkerOptions,
        *,
        on_frames: Callable[[WorkerProcess, list[Frame]], None],
        on_gone: Callable[[WorkerProcess], None],
        on_hung: Callable[[WorkerProcess, str], None] | None = None,
    ) -> None:
        self.slot = slot
        self.options = options
        self.state = State.STARTING
        self.pid = 0
        self.sent: dict[int, Any] = {}  # token -> the supervisor's job, in send order
        self.done = 0
        self.fatal: str | None = None  # the FATAL frame's text
        self.fatal_traceback = ""  # the user's traceback the FATAL frame carried, if any
        self.hung = False  # killed for a missing heartbeat
        self.retiring = False  # told to stop (replace, close): its end restarts nothing
        self.expected_end = False  # killed on purpose, not for a fault of its updates
        self.exit_code: int | None = None
        self.ready_waiter: asyncio.Future[None] | None = None  # a replacement's, set by its owner
        self.loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int | None] = self.loop.create_future()
        self.started_at = self.ready_at = self.gone_at = self.last_seen = 0.0
        self._on_frames = on_frames
        self._on_gone = on_gone
        self._on_hung = on_hung
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader = FrameReader()
        self._writer: FrameWriter | None = None
        self._in_fd = -1  # we read the worker's frames from it
        self._pidfd = -1
        self._watchdog: asyncio.TimerHandle | None = None
        self._killer: asyncio.TimerHandle | None = None  # SIGKILL after SIGTERM
        self._linger: asyncio.TimerHandle | None = None  # SIGKILL after a lone EOF

    def __repr__(self) -> str:
        return f"worker {self.slot} (pid {self.pid})"

    # -- start ------------------------------------------------------------------------------

    def spawn(self, init: dict[str, Any]) -> None:
        """Start the process and send it ``init`` (the INIT frame). Raises OSError."""
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        child_fds = (to_worker_r, from_worker_w)
        try:
            set_pipe_size(to_worker_w)
            set_pipe_size(from_worker_w)
            env = dict(os.environ)
            path = env.get("PYTHONPATH")
            env["PYTHONPATH"] = _TGRUNNER_ROOT + (os.pathsep + path if path else "")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, str(to_worker_r), str(from_worker_w)],
                pass_fds=child_fds,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            for fd in (to_worker_w, from_worker_r):
                os.close(fd)
            raise
        finally:
            for fd in child_fds:
                os.close(fd)
        self.pid = self._proc.pid
        self.started_at = self.last_seen = self.loop.time()
        os.set_blocking(to_worker_w, False)
        os.set_blocking(from_worker_r, False)
        self._writer = FrameWriter(self.loop, to_worker_w)
        self._writer.send(INIT, 0, orjson.dumps(init))
        self._in_fd = from_worker_r
        self.loop.add_reader(from_worker_r, self._readable)
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            with contextlib.suppress(OSError):
                self._pidfd = pidfd_open(self.pid)
                self.loop.add_reader(self._pidfd, self._process_ended)
        self._arm(self.options.startup_grace)

    # -- what the worker sends ----------------------------------------------------------------

    def send(self, kind: int, token: int = 0, payload: bytes = b"") -> None:
        """Queue a frame for the worker (written at the end of this loop turn)."""
        if self._writer is not None:
            self._writer.send(kind, token, payload)

    def _readable(self) -> None:
        if self._in_fd < 0:
            return
        try:
            frames, eof = read_frames(self._reader, self._in_fd)
        except WireError as exc:
            log.error("%r sent a corrupt stream (%s); killing it", self, exc)
            frames, eof = [], True
        if frames:
            self.last_seen = self.loop.time()
            self._on_frames(self, frames)
        if eof:
            self._eof()

    def _eof(self) -> None:
        """The worker's end of the pipe closed: it is exiting, or must be made to."""
        self._close_pipes()
        proc = self._proc
        if proc is None or self.state is State.GONE:
            return
        if proc.poll() is not None:
            self._ended()
            return
        if self._pidfd < 0:  # no pidfd (not Linux): wait for the exit in a thread
            waiting = self.loop.run_in_executor(None, proc.wait)
            waiting.add_done_callback(lambda _: self._ended())
        if not self.retiring:
            # It cannot report any more, so it must not run on; it normally exits within
            # microseconds of closing its pipe, and its pidfd then says so.
            self._linger = self.loop.call_later(_LINGER, self.kill)

    def _process_ended(self) -> None:
        """The pidfd is readable: the process exited. Take its last frames, then its end."""
        if self._pidfd >= 0:
            self.loop.remove_reader(self._pidfd)
        while self._in_fd >= 0:
            pending = self._reader.pending
            self._readable()
            if self._in_fd >= 0 and self._reader.pending == pending:
                break  # nothing more to read (a partial frame, or an empty pipe)
        self._ended()

    def _ended(self) -> None:
        """The process is dead: stop watching it, reap it, tell the owner (once)."""
        if self.state is State.GONE:
            return
        self.state = State.GONE
        self.gone_at = self.loop.time()
        self._disarm()
        for timer in (self._killer, self._linger):
            if timer is not None:
                timer.cancel()
        self._killer = self._linger = None
        self._close_pipes()
        if self._pidfd >= 0:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        proc = self._proc
        self.exit_code = None if proc is None else proc.poll()
        if not self.exited.done():
            self.exited.set_result(self.exit_code)
        self._on_gone(self)

    def _close_pipes(self) -> None:
        if self._in_fd >= 0:
            self.loop.remove_reader(self._in_fd)
            os.close(self._in_fd)
            self._in_fd = -1
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- the watchdog ---------------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        self._watchdog = self.loop.call_later(delay, self._check)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _deadline(self) -> float:
        if self.state is State.STARTING:
            return self.started_at + self.options.startup_grace
        return self.last_seen + self.options.heartbeat_timeout

    def _check(self) -> None:
        self._watchdog = None
        if self._in_fd < 0 or self.hung:
            return
        left = self._deadline() - self.loop.time()
        if left > 0:
            self._arm(left)
            return
        self._readable()  # this loop may be the late one: take what the worker did send
        if self._in_fd < 0:  # it is ending
            return
        left = self._deadline() - self.loop.time()
        if left > 0:
            self._arm(left)
            return
        if self.state is State.STARTING:
            what = f"was not ready within the start-up grace of {self.options.startup_grace:g} s"
            self.fatal = self.fatal or f"the worker process {what}"
        else:
            what = (
                f"sent no heartbeat for {self.options.heartbeat_timeout:g} s (its event loop "
                "is blocked)"
            )
        log.warning("%r %s; terminating it", self, what)
        self.hung = True
        if self._on_hung is not None:
            self._on_hung(self, what)
        self.terminate()

    # -- the supervisor's orders --------------------------------------------------------------

    def ready(self) -> None:
        """The worker sent READY: from now on the heartbeat timeout applies."""
        self.state = State.READY
        self.ready_at = self.last_seen = self.loop.time()
        self._disarm()
        self._arm(self.options.heartbeat_timeout)

    def stop(self) -> None:
        """Ask it to drain, run its shutdown hook and exit (STOP). Its end restarts nothing."""
        self.retiring = True
        if self.state is State.READY:
            self.state = State.STOPPING
            self.send(STOP)
        elif self.state is State.STARTING:  # nothing in flight yet: no drain to wait for
            self.expected_end = True
            self.kill()

    def terminate(self) -> None:
        """SIGTERM now, SIGKILL after ``kill_grace`` if it still runs."""
        self._signal(signal.SIGTERM)
        if self._killer is None and self.state is not State.GONE:
            self._killer = self.loop.call_later(self.options.kill_grace, self.kill)

    def kill(self) -> None:
        """SIGKILL now."""
        self._killer = None
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        proc = self._proc
        # send_signal checks the process was not reaped, so a reused PID is never signalled.
        if proc is not None and self.state is not State.GONE:
            with contextlib.suppress(OSError):
                proc.send_signal(sig)
