"""``offload()``: results and errors come back; a timeout, a cancellation and a pool process's
own death each kill or lose one process, which is replaced while the other calls go on; calls
past the pool's size queue; what cannot be sent is refused before anything is."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import threading
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import offload_work as work
import pytest
from offload_support import alive, wait_gone

from tgrunner.errors import (
    ConfigError,
    OffloadCrashed,
    OffloadError,
    OffloadRefused,
    OffloadTimeout,
)
from tgrunner.jobs import configure_offload, offload, offload_pids, shutdown_offload

pytestmark = [pytest.mark.usefixtures("offload_pool"), pytest.mark.timeout(60)]


class Hung:
    """A loopback listener for :func:`offload_work.hang`: ``pids`` gets each hung process's
    PID as it connects; ``ended`` counts the connections that closed (their process died)."""

    def __init__(self) -> None:
        self.pids: asyncio.Queue[int] = asyncio.Queue()
        self.seen = 0
        self.ended = 0
        self.changed = asyncio.Condition()
        self.server: asyncio.Server | None = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.seen += 1
        self.pids.put_nowait(int(await reader.readline()))
        await reader.read()  # EOF: the process is gone
        writer.close()
        async with self.changed:
            self.ended += 1
            self.changed.notify_all()

    async def wait_ended(self, count: int, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: self.ended >= count)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def hung() -> AsyncIterator[Hung]:
    listener = Hung()
    listener.server = await asyncio.start_server(listener._client, "127.0.0.1", 0)
    async with listener.server:
        yield listener


# -- results and errors ------------------------------------------------------------------------


async def test_the_result_comes_back_from_another_process() -> None:
    assert await offload(work.square, 12) == 144
    pid = await offload(work.pid)
    assert pid != os.getpid() and pid in offload_pids()
    assert await offload(work.Box.triple, 5) == 15  # a static method, by its qualified name
    assert await offload(work.Box(4).double) == 8  # a bound method, pickled with its object
    assert await offload(functools.partial(work.square, 9)) == 81
    assert await offload(divmod, 17, 5) == (3, 2)  # a builtin


async def test_the_functions_exception_is_raised_with_the_pool_process_traceback() -> None:
    with pytest.raises(ValueError, match=r"^no good") as caught:
        await offload(work.fail, "no good")
    assert str(caught.value) == "no good"
    [note] = caught.value.__notes__
    assert "offload_work.fail" in note and "offload pool process (pid" in note
    assert 'offload_work.py", line' in note and "raise ValueError(message)" in note


async def test_exceptions_that_cannot_cross_are_an_offload_error_naming_them() -> None:
    with pytest.raises(OffloadError, match=r"raised offload_work\.NeedsTwo: 1/2 \(it could not be"):
        await offload(work.raise_needs_two)
    with pytest.raises(OffloadError, match=r"HoldsALock: locked \(it could not be pickled there"):
        await offload(work.raise_holds_a_lock)
    with pytest.raises(OffloadError, match=r"raised builtins\.SystemExit: 4") as caught:
        await offload(work.raise_system_exit)  # not raised as SystemExit in the handler
    assert "raise SystemExit(4)" in caught.value.__notes__[0]
    with pytest.raises(OffloadError, match=r"raised builtins\.StopIteration: 5"):
        await offload(work.raise_stop_iteration)  # a future cannot take a StopIteration
    assert await offload(work.square, 3) == 9


async def test_a_result_that_does_not_pickle_is_a_clear_error_and_the_process_goes_on() -> None:
    await offload(work.pid)
    before = sorted(offload_pids())
    with pytest.raises(OffloadError, match=r"result of offload_work.return_a_lock, a _thread"):
        await offload(work.return_a_lock)
    assert sorted(offload_pids()) == before


async def test_what_the_pool_process_cannot_load_is_a_clear_error() -> None:
    # A module (and class) this process has and the pool processes cannot import.
    ghost = types.ModuleType("ghost_module")
    exec("class Ghost:\n    pass\ndef fn():\n    return 1\n", ghost.__dict__)
    sys.modules["ghost_module"] = ghost
    try:
        with pytest.raises(OffloadError, match=r"cannot load ghost_module\.fn .*ModuleNotFound"):
            await offload(ghost.fn)
        with pytest.raises(OffloadError, match="cannot unpickle the arguments of offload_work"):
            await offload(work.square, ghost.Ghost())
    finally:
        del sys.modules["ghost_module"]


# -- timeouts, deaths, cancellation -------------------------------------------------------------


async def test_a_timeout_kills_and_replaces_the_process(hung: Hung) -> None:
    started = time.monotonic()
    with pytest.raises(OffloadTimeout, match=r"offload_work.hang ran past its timeout of 0.5 s"):
        await offload(work.hang, hung.port, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    victim = hung.pids.get_nowait()
    assert not alive(victim)  # killed and reaped before the error was raised
    assert isinstance(OffloadTimeout("x", 1), TimeoutError)
    results = await asyncio.gather(*(offload(work.pid) for _ in range(6)))
    assert victim not in results and victim not in offload_pids()


async def test_a_process_that_dies_fails_its_call_alone_and_is_replaced() -> None:
    long_call = asyncio.ensure_future(offload(work.spin, 400))
    with pytest.raises(
        OffloadCrashed, match=r"running offload_work\.exit_now .* exited with code 3"
    ):
        await offload(work.exit_now, 3)
    with pytest.raises(OffloadCrashed, match="was killed by SIGSEGV") as caught:
        await offload(work.segfault)
    assert caught.value.exit_code == -11
    _, start, end = await long_call  # the other process's call went on meanwhile
    assert end - start >= 0.4
    assert await offload(work.square, 4) == 16


async def test_a_process_killed_from_outside_fails_only_the_call_it_ran(hung: Hung) -> None:
    # What the OOM killer does: SIGKILL, to a busy process and to an idle one.
    call = asyncio.ensure_future(offload(work.hang, hung.port))
    busy = await hung.pids.get()
    idle = [pid for pid in offload_pids() if pid != busy]
    os.kill(busy, signal.SIGKILL)
    with pytest.raises(OffloadCrashed, match=r"offload_work\.hang .* was killed by SIGKILL"):
        await call
    for pid in idle:
        os.kill(pid, signal.SIGKILL)
    assert await wait_gone(idle, timeout=5) == []
    # The calls that come next go to replacements, none of them fails.
    results = await asyncio.gather(*(offload(work.pid) for _ in range(6)))
    assert not set(results) & {busy, *idle}


async def test_cancelling_a_running_call_kills_its_process(hung: Hung) -> None:
    call = asyncio.ensure_future(offload(work.hang, hung.port))
    victim = await hung.pids.get()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await hung.wait_ended(1)  # the process died: its connection closed
    assert victim not in await asyncio.gather(*(offload(work.pid) for _ in range(6)))


async def test_a_handlers_time_limit_kills_the_offloaded_call_too(hung: Hung) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await offload(work.hang, hung.port)
    await hung.wait_ended(1)


async def test_a_cancelled_call_that_still_queues_never_runs(hung: Hung) -> None:
    busy = [asyncio.ensure_future(offload(work.spin, 300)) for _ in range(2)]
    queued = asyncio.ensure_future(offload(work.hang, hung.port))
    await asyncio.sleep(0)  # one turn: the call is queued behind the two busy ones
    queued.cancel()
    await asyncio.gather(*busy)
    assert await offload(work.square, 2) == 4
    assert hung.seen == 0  # hang() never started anywhere


# -- concurrency --------------------------------------------------------------------------------


async def test_calls_past_the_pool_size_queue_and_the_loop_stays_free() -> None:
    await asyncio.gather(offload(work.pid), offload(work.pid))  # both processes started
    late: list[float] = []

    async def tick() -> None:
        while True:
            due = time.monotonic() + 0.01
            await asyncio.sleep(0.01)
            late.append(time.monotonic() - due)

    ticker = asyncio.ensure_future(tick())
    spans = await asyncio.gather(*(offload(work.spin, 100) for _ in range(6)))
    ticker.cancel()
    assert len({pid for pid, _, _ in spans}) <= 2
    # At no moment did more than 2 calls run: each start sees at most one other call running.
    for pid, start, _ in spans:
        others = [s for p, s, e in spans if p != pid and s <= start < e]
        assert len(others) <= 1
    assert max(e for _, _, e in spans) - min(s for _, s, _ in spans) >= 0.29  # 3 rounds
    assert late and max(late) < 0.1, f"the event loop was blocked for {max(late):.3f} s"


def test_the_pool_serves_any_event_loop_and_several_at_once() -> None:
    assert asyncio.run(offload(work.square, 5)) == 25
    assert asyncio.run(offload(work.square, 6)) == 36  # the first loop is closed: no matter
    results: list[Any] = []

    def in_thread(x: int) -> None:
        results.append(asyncio.run(offload(work.square, x)))

    threads = [threading.Thread(target=in_thread, args=(x,)) for x in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [0, 1, 4, 9]
    import uvloop

    assert uvloop.run(offload(work.square, 7)) == 49


# -- refused before anything is sent -------------------------------------------------------------


def _local() -> Any:
    def inner() -> int:
        return 1

    return inner


async def test_what_cannot_be_sent_is_refused_before_a_pool_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(OffloadRefused, match=r"is a lambda: .* define it with def at the top"):
        await offload(lambda: 1)
    with pytest.raises(OffloadRefused, match=r"_local.<locals>.inner is defined inside another"):
        await offload(_local())
    with pytest.raises(OffloadRefused, match="async_square is an async function"):
        await offload(work.async_square, 2)
    with pytest.raises(OffloadRefused, match="not a int"):
        await offload(3)
    with pytest.raises(OffloadRefused, match=r"argument 2 \(a _thread.lock\) of offload_work.sq"):
        await offload(work.square, 1, threading.Lock())
    with pytest.raises(OffloadRefused, match=r"keyword argument 'x' \(a _thread.RLock\)"):
        await offload(work.square, x=threading.RLock())
    with pytest.raises(OffloadRefused, match=r"functools.partial\(.*<lambda>\) cannot be sent"):
        await offload(functools.partial(lambda x: x, 1))
    assert isinstance(OffloadRefused("x"), TypeError)
    with pytest.raises(ValueError, match="timeout must be above 0"):
        await offload(work.square, 1, timeout=0)

    def shadowed(x: int) -> int:
        return x

    shadowed.__qualname__ = "square"
    shadowed.__module__ = "offload_work"
    with pytest.raises(OffloadRefused, match=r"offload_work\.square is not the function"):
        await offload(shadowed, 1)
    script = types.ModuleType("__main__")  # a script run as python bot.py: no spec
    exec("def crunch():\n    return 1\n", script.__dict__)
    monkeypatch.setitem(sys.modules, "__main__", script)
    with pytest.raises(OffloadRefused, match="crunch is defined in the script being run"):
        await offload(script.crunch)
    assert offload_pids() == []  # nothing was sent: no pool was even started


# -- the pool's size and its end ------------------------------------------------------------------


async def test_the_size_is_configured_before_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    await offload(work.pid)
    assert len(offload_pids()) == 2
    with pytest.raises(ConfigError, match="already runs 2 processes"):
        configure_offload(3)
    with pytest.raises(ConfigError, match="at least 1"):
        configure_offload(0)
    await shutdown_offload()
    monkeypatch.setenv("TGRUNNER_OFFLOAD_PROCESSES", "3")  # the variable wins over the code
    await offload(work.pid)
    assert len(offload_pids()) == 3
    await shutdown_offload()
    monkeypatch.setenv("TGRUNNER_OFFLOAD_PROCESSES", "many")
    with pytest.raises(ConfigError, match="TGRUNNER_OFFLOAD_PROCESSES='many': must be a whole"):
        await offload(work.pid)


async def test_a_pool_that_cannot_start_fails_calls_instead_of_keeping_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    started = time.monotonic()
    with pytest.raises(OffloadError, match=r"no offload pool process could be started .*FileNot"):
        await offload(work.square, 1)
    assert time.monotonic() - started < 5  # after 3 failed start-ups in a row, not for ever


async def test_shutdown_fails_what_runs_and_queues_and_a_later_call_starts_anew(
    hung: Hung,
) -> None:
    running = [asyncio.ensure_future(offload(work.hang, hung.port)) for _ in range(3)]
    old = [await hung.pids.get(), await hung.pids.get()]  # two run, the third queues
    started = time.monotonic()
    await shutdown_offload()
    assert time.monotonic() - started < 3
    for call in running:
        with pytest.raises(OffloadError, match="shut down"):
            await call
    assert not [pid for pid in old if alive(pid)]
    await hung.wait_ended(2)
    assert hung.seen == 2
    await shutdown_offload()  # twice: nothing to do
    assert await offload(work.square, 8) == 64
    assert not set(offload_pids()) & set(old)
