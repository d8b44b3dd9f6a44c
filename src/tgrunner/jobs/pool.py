"""A supervisor of job-worker processes: N copies of one command, kept running, stopped cleanly.

::

    pool = ProcessPool([sys.executable, "-m", "tgrunner.jobs.process", ...], processes=2)
    await pool.start()        # every process spawned
    ...
    await pool.close()        # SIGTERM each, wait up to grace + margin, SIGKILL what is left

    ProcessPool(command, processes=4).run()    # or on its own, until SIGINT or SIGTERM

It knows nothing about bots or jobs: it runs a command, watches it and replaces it.

- **Deaths are seen at once**, with no polling: the process's pidfd (Linux) becomes readable
  when it exits; elsewhere a thread blocks in ``wait()``. Its stderr goes through this process
  (forwarded as it comes), so the last line it wrote can be quoted when it fails.
- **Restarts.** A process that exits while the pool runs is started again. One that ends
  within ``settle`` seconds of its start is a *failed start*: the next start waits 0.5 s,
  doubled up to 10 s, and ``crash_limit`` failed starts in a row (3; an import error, a bad
  token) end that slot with a :class:`~tgrunner.errors.ConfigError` quoting the process's last
  line, given to ``on_failure``: a crash loop is reported, never spun on. The exit code
  ``replace_code`` means "replace me" (a worker whose runaway thread cannot be stopped): it is
  restarted at once and is never a failure.
- **A clean stop** (:meth:`close`): SIGTERM to each process (a job worker finishes what runs,
  gives back the rest and exits 0), up to ``grace + margin`` seconds for them to exit, then
  SIGKILL, by pidfd or by a PID not yet reaped (never a reused one).
- **Process groups.** Each process leads its own group, so a Ctrl-C in the terminal reaches
  this supervisor only, which decides how the processes stop. Should this process die
  without stopping them (SIGKILL), the kernel sends each SIGTERM (Linux), so none is left
  running on its own.
- **The summary**: one line per slot after the stop (:meth:`summary`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tgrunner.errors import ConfigError
from tgrunner.executors.processes.process import describe_exit
from tgrunner.lifecycle import StopControl

__all__ = ["CRASH_LIMIT", "ProcessPool"]

log = logging.getLogger(__name__)

CRASH_LIMIT = 3
"""Failed starts in a row (processes that ended within ``settle`` seconds) that end a slot."""

_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 10.0
_REAP_TIMEOUT = 5.0  # seconds to wait for a SIGKILLed process to be reaped
_LAST_LINE = 300  # characters of a process's last stderr line kept for error messages
_PR_SET_PDEATHSIG = 1


def _death_signal(sig: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when this process dies
    (Linux's ``PR_SET_PDEATHSIG``), or None where there is no such thing. Everything it
    needs is looked up here, before the fork: the child only makes the call."""
    if sig is None or not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    kill, getppid, getpid = os.kill, os.getppid, os.getpid

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if getppid() != parent:  # the parent died before the call: nobody will send it
            kill(getpid(), sig)

    return arm


class _Process:
    """One spawned process: its exit as a future (``exited``), its stderr forwarded."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        cwd: str | None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            cwd=cwd,
            process_group=0,
            preexec_fn=preexec,
        )
        self.pid = self.popen.pid
        self.started_at = self.loop.time()
        self.exited: asyncio.Future[int] = self.loop.create_future()
        self.last_line = ""
        self._partial = b""
        assert self.popen.stderr is not None
        self._err = self.popen.stderr.fileno()
        os.set_blocking(self._err, False)
        self.loop.add_reader(self._err, self._read_stderr)
        self._pidfd = -1
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            with contextlib.suppress(OSError):
                self._pidfd = pidfd_open(self.pid)
                self.loop.add_reader(self._pidfd, self._ended)
        if self._pidfd < 0:  # not Linux: a thread waits for the exit
            waiting = self.loop.run_in_executor(None, self.popen.wait)
            waiting.add_done_callback(lambda _: self._ended())

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def uptime(self) -> float:
        return self.loop.time() - self.started_at

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the process is not reaped yet (a reused PID is never signalled)."""
        if not self.alive:
            return
        with contextlib.suppress(OSError):
            if self._pidfd >= 0:
                signal.pidfd_send_signal(self._pidfd, sig)
            else:
                self.popen.send_signal(sig)

    def _read_stderr(self) -> None:
        try:
            chunk = os.read(self._err, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close_stderr()
            return
        with contextlib.suppress(OSError):  # our own stderr may be gone; theirs must not block
            _write_all(2, chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()[-_LAST_LINE:]
        for line in reversed(lines):
            if line.strip():
                self.last_line = line.decode("utf-8", "replace").strip()[:_LAST_LINE]
                break

    def _close_stderr(self) -> None:
        if self._err >= 0:
            self.loop.remove_reader(self._err)
            assert self.popen.stderr is not None
            self.popen.stderr.close()
            self._err = -1
            if self._partial.strip():
                self.last_line = self._partial.decode("utf-8", "replace").strip()
                self._partial = b""

    def _ended(self) -> None:
        if self.exited.done():
            return
        if self._pidfd >= 0:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        while self._err >= 0:  # what it wrote last, before its exit is reported
            before = self.last_line, self._partial
            self._read_stderr()
            if self._err >= 0 and (self.last_line, self._partial) == before:
                break
        self._close_stderr()
        code = self.popen.wait()  # it has exited: reaps it at once
        self.exited.set_result(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Slot:
    """One place in the pool: its current process and its history."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: _Process | None = None
        self.restarts = 0
        self.failures = 0  # failed starts in a row
        self.killed = False  # SIGKILLed at the end of the stop
        self.done = False  # exited 0, not to be restarted (restart_clean_exits=False)
        self.error: ConfigError | None = None
        self.keeper: asyncio.Task[None] | None = None


class ProcessPool:
    """Keep ``processes`` copies of ``command`` (an argv list) running.

    - ``env``: the processes' whole environment (default: this process's); ``cwd``: their
      working folder (default: this one's).
    - ``grace``: seconds a stopping process may take after SIGTERM (default 10), plus
      ``margin`` (default 5) before it is SIGKILLed.
    - ``settle``: a process that lives this many seconds has started well (default 5); one
      that ends sooner is a failed start, and ``crash_limit`` (default 3) in a row end its slot.
    - ``replace_code``: the exit code asking to be replaced at once (default None: none).
    - ``restart_clean_exits``: start a process that exited 0 again (default True); False
      for processes that end when their work is done (``--burst``): such a slot is done, and
      :meth:`serve` returns once every slot is.
    - ``parent_death_signal``: what a process gets when this one dies without stopping it
      (SIGKILLed, say), so none is left orphaned (default SIGTERM, a clean stop; Linux only;
      None: nothing).
    - ``name``: what a process is called in logs and errors (default ``"job worker"``).
    - ``on_failure(exc)``: a slot's crash loop, a ConfigError (default: only logged).
    - ``on_event(kind, slot, pid)``: ``"started"`` and ``"exited"`` of each process, and
      ``"failed"`` for a slot's crash loop (default none).

    The lifecycle: ``await start()`` then ``await close()``; or ``await serve()`` (until
    :meth:`stop`, SIGINT or SIGTERM), ``run()``. ``stop()`` is safe to call twice.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        processes: int,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        grace: float = 10.0,
        margin: float = 5.0,
        settle: float = 5.0,
        crash_limit: int = CRASH_LIMIT,
        replace_code: int | None = None,
        restart_clean_exits: bool = True,
        parent_death_signal: int | None = signal.SIGTERM,
        name: str = "job worker",
        on_failure: Callable[[ConfigError], None] | None = None,
        on_event: Callable[[str, int, int], None] | None = None,
    ) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ConfigError(f"a process pool needs at least 1 process, not {processes!r}")
        if not command:
            raise ConfigError("a process pool needs a command to run")
        if grace < 0 or margin < 0 or settle < 0 or crash_limit < 1:
            raise ConfigError("grace, margin and settle must be 0 or more; crash_limit 1 or more")
        self.command = list(command)
        self.env = env
        self.cwd = None if cwd is None else str(cwd)
        self.grace = grace
        self.margin = margin
        self.settle = settle
        self.crash_limit = crash_limit
        self.replace_code = replace_code
        self.restart_clean_exits = restart_clean_exits
        self._preexec = _death_signal(parent_death_signal)
        self.name = name
        self.on_failure = on_failure
        self.on_event = on_event
        self.slots = [_Slot(i) for i in range(processes)]
        self.failure: ConfigError | None = None  # the first crash loop
        self._state = "new"  # -> running -> closing -> closed
        self._closing: asyncio.Event | None = None  # set when close() begins
        self._closed: asyncio.Event | None = None  # set when it has ended
        self._control: StopControl | None = None

    # -- what it says ---------------------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """The PIDs of the processes running now."""
        return [s.process.pid for s in self.slots if s.process is not None and s.process.alive]

    @property
    def ready(self) -> bool:
        """Whether every slot has a running process."""
        return self._state == "running" and len(self.pids) == len(self.slots)

    def summary(self) -> list[str]:
        """One line per slot: ``job worker 0: pid 4242, 1 restart, exited with code 0``."""
        lines = []
        for slot in self.slots:
            proc = slot.process
            text = f"{self.name} {slot.index}: pid {proc.pid if proc else '-'}"
            if slot.restarts:
                text += f", {slot.restarts} restart{'s' if slot.restarts != 1 else ''}"
            if slot.error is not None:
                text += f", stopped after {slot.failures} failed starts"
            elif proc is not None and proc.exited.done():
                text += ", " + describe_exit(proc.exited.result())
                if slot.killed:
                    text += f" (still running {self.grace + self.margin:g} s into the stop)"
            elif proc is not None:
                text += ", running"
            lines.append(text)
        return lines

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every process; ConfigError when the command cannot be started."""
        if self._state != "new":
            raise RuntimeError("a ProcessPool starts once")
        self._state = "running"
        self._closing, self._closed = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            for slot in self.slots:
                self._spawn(slot)
        except ConfigError:
            await self.close(timeout=0)
            raise
        for slot in self.slots:
            slot.keeper = loop.create_task(
                self._keep(slot), name=f"tgrunner-{self.name}-{slot.index}"
            )
        log.debug(
            "%d %s process(es) started (pids %s)",
            len(self.slots),
            self.name,
            ", ".join(map(str, self.pids)),
        )

    def _spawn(self, slot: _Slot) -> None:
        try:
            slot.process = _Process(self.command, env=self.env, cwd=self.cwd, preexec=self._preexec)
        except OSError as exc:
            raise ConfigError(
                f"cannot start a {self.name} ({self.command[0]}): {exc.strerror or exc}"
            ) from None
        log.debug("%s %d started: pid %d", self.name, slot.index, slot.process.pid)
        self._event("started", slot, slot.process)

    def _event(self, kind: str, slot: _Slot, process: _Process | None) -> None:
        if self.on_event is not None:
            self.on_event(kind, slot.index, process.pid if process is not None else 0)

    async def _keep(self, slot: _Slot) -> None:
        """Restart the slot's process whenever it ends, until the pool closes or it loops."""
        assert self._closing is not None
        while True:
            process = slot.process
            assert process is not None
            code = await process.exited
            self._event("exited", slot, process)
            if self._closing.is_set():
                return
            uptime = process.uptime()
            how = describe_exit(code)
            if code == 0 and not self.restart_clean_exits:
                slot.done = True
                if all(s.done for s in self.slots) and self._control is not None:
                    self._control.request_stop()
                return
            if self.replace_code is not None and code == self.replace_code:
                log.info("%s %d (pid %d) asked to be replaced", self.name, slot.index, process.pid)
                slot.failures, delay = 0, 0.0
            elif uptime < self.settle:
                slot.failures += 1
                if slot.failures >= self.crash_limit:
                    self._failed(slot, how)
                    return
                delay = min(_BACKOFF_BASE * 2 ** (slot.failures - 1), _BACKOFF_CAP)
                log.warning(
                    "%s %d (pid %d) %s %.1f s after it started; starting it again in %.1f s",
                    self.name, slot.index, process.pid, how, uptime, delay,
                )  # fmt: skip
            else:
                log.warning(
                    "%s %d (pid %d) %s; starting it again", self.name, slot.index, process.pid, how
                )
                slot.failures, delay = 0, 0.0
            if delay:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._closing.wait()
                if self._closing.is_set():
                    return
            slot.restarts += 1
            try:
                self._spawn(slot)
            except ConfigError as exc:
                self._failed(slot, str(exc))
                return

    def _failed(self, slot: _Slot, how: str) -> None:
        process = slot.process
        said = f": {process.last_line}" if process is not None and process.last_line else ""
        slot.error = error = ConfigError(
            f"{self.name} {slot.index} failed to start {slot.failures} times in a row (the "
            f"last one {how}{said}); fix the error and start it again"
        )
        log.error("%s", error)
        self._event("failed", slot, process)
        if self.failure is None:
            self.failure = error
        if self.on_failure is not None:
            self.on_failure(error)
        if self._control is not None:
            self._control.request_stop()

    async def close(self, timeout: float | None = None) -> None:
        """Stop every process: SIGTERM, up to ``timeout`` seconds (default ``grace +
        margin``) for them to exit, then SIGKILL. Safe to call twice (the second call waits
        for the first); cancelling it still kills what is left."""
        if self._state == "new":
            self._state = "closed"
        if self._state == "closed":
            return
        assert self._closing is not None and self._closed is not None
        if self._state == "closing":
            await self._closed.wait()
            return
        self._state = "closing"
        self._closing.set()
        wait = self.grace + self.margin if timeout is None else timeout
        live = [s.process for s in self.slots if s.process is not None and s.process.alive]
        for process in live:
            process.signal(signal.SIGTERM)
        try:
            if live and wait > 0:
                await asyncio.wait([p.exited for p in live], timeout=wait)
        finally:
            await self._kill_the_rest([s for s in self.slots if s.process in live], wait)

    async def _kill_the_rest(self, slots: list[_Slot], waited: float) -> None:
        """SIGKILL the processes of ``slots`` still running, wait for them to be reaped, end
        the keepers."""
        stuck = [s for s in slots if s.process is not None and s.process.alive]
        for slot in stuck:
            assert slot.process is not None
            log.warning(
                "%s %d (pid %d) still runs %.1f s after SIGTERM; killing it",
                self.name, slot.index, slot.process.pid, waited,
            )  # fmt: skip
            slot.killed = True
            slot.process.signal(signal.SIGKILL)
        try:
            if stuck:
                exits = [s.process.exited for s in stuck if s.process is not None]
                await asyncio.wait(exits, timeout=_REAP_TIMEOUT)
            keepers = [s.keeper for s in self.slots if s.keeper is not None]
            if keepers:  # each ends once its process's exit is seen
                await asyncio.wait(keepers, timeout=1.0)
        finally:
            for slot in self.slots:
                if slot.keeper is not None and not slot.keeper.done():
                    slot.keeper.cancel()
            self._state = "closed"
            assert self._closed is not None
            self._closed.set()

    def forward(self, sig: int) -> None:
        """Send ``sig`` to every running process (a second SIGTERM: their fast stop)."""
        for slot in self.slots:
            if slot.process is not None:
                slot.process.signal(sig)

    def stop(self, fast: bool = False) -> None:
        """Ask :meth:`serve` to stop (``fast``: the processes get a second SIGTERM). Safe to
        call twice, from any thread."""
        if self._control is None:
            self._control = StopControl()
        self._control.request_stop(fast)

    async def serve(self, *, install_signals: bool = True) -> int:
        """Start, run until :meth:`stop` (SIGINT, SIGTERM) or a crash loop, then close.

        Returns 0 after a clean stop, 1 after a fast one; raises the crash loop's ConfigError.
        """
        control = self._control = self._control or StopControl()
        loop = asyncio.get_running_loop()
        control.bind(loop)
        if install_signals:
            control.install(loop)
        try:
            if not control.requested.is_set():
                await self.start()
                await control.requested.wait()
            closing = loop.create_task(self.close())
            fast = loop.create_task(control.fast.wait())
            await asyncio.wait({closing, fast}, return_when=asyncio.FIRST_COMPLETED)
            if fast.done():
                self.forward(signal.SIGTERM)
            fast.cancel()
            await closing
        finally:
            control.uninstall()
        for line in self.summary():
            log.info("%s", line)
        if self.failure is not None:
            raise self.failure
        return 1 if control.fast.is_set() else 0

    def run(self) -> int:
        """:meth:`serve` in a new event loop; returns its exit code."""
        return asyncio.run(self.serve())
