"""ProcessPool, the job-worker supervisor, over small stand-in child processes: it starts N,
replaces one that dies (SIGKILLed by PID), stops them cleanly (SIGTERM, then SIGKILL after
grace + margin), reports a crash loop after 3 failed starts instead of spinning, and restarts
at once a child that asks to be replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgrunner.errors import ConfigError
from tgrunner.jobs.pool import ProcessPool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

# A stand-in job worker: it connects to the test's Unix socket once its SIGTERM handler is in
# place, sends its pid, and then does what MODE says.
CHILD = """
import os, signal, socket, sys, time
path, mode = sys.argv[1], sys.argv[2]
stopped = []
def term(*_):
    if mode == "stubborn":
        return
    sys.stderr.write(f"child {os.getpid()} stopping\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.sendall(f"{os.getpid()}\\n".encode())
if mode == "replace":
    marker = sys.argv[3]
    count = int(open(marker).read() or 0) if os.path.exists(marker) else 0
    if count < 4:
        open(marker, "w").write(str(count + 1))
        os._exit(75)
while True:
    signal.pause()
"""

CRASH = "import sys; sys.stderr.write('boom: no module named nowhere\\n'); sys.exit(2)"


class Children:
    """The test's Unix socket: each child that connects is a started, ready child."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready: asyncio.Queue[int] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        await self.ready.put(int(line))
        writer.close()

    async def next(self, timeout: float = 10) -> int:
        async with asyncio.timeout(timeout):
            return await self.ready.get()

    def command(self, mode: str = "serve", *extra: str) -> list[str]:
        return [sys.executable, "-c", CHILD, str(self.path), mode, *extra]


@pytest.fixture
async def children(tmp_path: Path) -> AsyncIterator[Children]:
    found = Children(tmp_path / "ready.sock")
    found.server = await asyncio.start_unix_server(found._connected, path=str(found.path))
    yield found
    found.server.close()
    await found.server.wait_closed()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_it_starts_n_replaces_a_killed_one_and_stops_them_cleanly(
    children: Children,
) -> None:
    events: list[tuple[str, int, int]] = []
    pool = ProcessPool(
        children.command(), processes=3, settle=0.0, on_event=lambda *e: events.append(e)
    )
    await pool.start()
    first = {await children.next() for _ in range(3)}
    assert first == set(pool.pids) and pool.ready
    victim = pool.slots[1].process
    assert victim is not None
    os.kill(victim.pid, signal.SIGKILL)
    replacement = await children.next()
    assert replacement not in first
    assert sorted(pool.pids) == sorted((first - {victim.pid}) | {replacement})
    assert ("exited", 1, victim.pid) in events and ("started", 1, replacement) in events
    await pool.close()
    assert not any(_alive(pid) for pid in first | {replacement})
    lines = pool.summary()
    assert lines[1] == f"job worker 1: pid {replacement}, 1 restart, exited with code 0", lines
    assert lines[0].endswith("exited with code 0") and "restart" not in lines[0], lines
    await pool.close()  # safe twice


async def test_a_child_that_ignores_sigterm_is_killed_after_grace_and_margin(
    children: Children,
) -> None:
    pool = ProcessPool(children.command("stubborn"), processes=2, grace=0.3, margin=0.2)
    await pool.start()
    pids = {await children.next() for _ in range(2)}
    began = time.monotonic()
    await pool.close()
    took = time.monotonic() - began
    assert 0.5 <= took < 3, took
    assert not any(_alive(pid) for pid in pids)
    for line in pool.summary():
        assert "was killed by SIGKILL (still running 0.5 s into the stop)" in line, line


async def test_a_crash_loop_is_reported_after_three_failed_starts_not_spun_on() -> None:
    failures: list[ConfigError] = []
    started: list[float] = []
    pool = ProcessPool(
        [sys.executable, "-c", CRASH],
        processes=1,
        on_failure=failures.append,
        on_event=lambda kind, *_: started.append(time.monotonic()) if kind == "started" else None,
    )
    await pool.start()
    keeper = pool.slots[0].keeper
    assert keeper is not None
    async with asyncio.timeout(20):
        await keeper
    assert len(failures) == 1 and pool.failure is failures[0]
    message = str(failures[0])
    assert message.startswith("job worker 0 failed to start 3 times in a row"), message
    assert "exited with code 2" in message and "boom: no module named nowhere" in message
    assert len(started) == 3, "exactly three starts, then it gave up"
    # Backed off: 0.5 s after the first failure, 1 s after the second.
    assert started[1] - started[0] >= 0.5 and started[2] - started[1] >= 1.0, started
    last = pool.slots[0].process
    assert last is not None
    assert pool.summary() == [
        f"job worker 0: pid {last.pid}, 2 restarts, stopped after 3 failed starts"
    ]
    await pool.close()


async def test_serve_stops_on_a_crash_loop_and_raises_it() -> None:
    pool = ProcessPool([sys.executable, "-c", CRASH], processes=2)
    with pytest.raises(ConfigError, match="failed to start 3 times in a row"):
        async with asyncio.timeout(20):
            await pool.serve(install_signals=False)


async def test_a_child_asking_to_be_replaced_is_restarted_at_once_and_never_a_failure(
    children: Children, tmp_path: Path
) -> None:
    marker = tmp_path / "replaced"
    failures: list[ConfigError] = []
    pool = ProcessPool(
        children.command("replace", str(marker)),
        processes=1,
        settle=60.0,  # every exit is quick: without replace_code the 3rd would end the slot
        replace_code=75,
        on_failure=failures.append,
    )
    began = time.monotonic()
    await pool.start()
    pids = [await children.next() for _ in range(5)]
    assert len(set(pids)) == 5 and pool.slots[0].restarts == 4
    assert time.monotonic() - began < 10, "no back-off between replacements"
    assert not failures
    await pool.close()


async def test_serve_runs_until_stop_and_returns_0(children: Children) -> None:
    pool = ProcessPool(children.command(), processes=2)
    serving = asyncio.ensure_future(pool.serve(install_signals=False))
    pids = {await children.next() for _ in range(2)}
    pool.stop()
    pool.stop()  # safe twice
    async with asyncio.timeout(10):
        assert await serving == 0
    assert not any(_alive(pid) for pid in pids)


async def test_a_cancelled_close_still_kills_every_child(children: Children) -> None:
    pool = ProcessPool(children.command("stubborn"), processes=2, grace=30)
    await pool.start()
    pids = {await children.next() for _ in range(2)}
    with pytest.raises(TimeoutError):  # cancelled 0.2 s into its wait of 30 s
        await asyncio.wait_for(pool.close(), 0.2)
    assert not any(_alive(pid) for pid in pids)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 1 process"):
        ProcessPool(["true"], processes=0)
    with pytest.raises(ConfigError, match="needs a command"):
        ProcessPool([], processes=1)


async def test_a_command_that_cannot_start_is_one_config_error() -> None:
    pool = ProcessPool(["/no/such/program"], processes=2)
    with pytest.raises(ConfigError, match=r"cannot start a job worker \(/no/such/program\)"):
        await pool.start()


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kills=st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=5))
def test_whatever_is_killed_the_pool_keeps_n_distinct_children_and_leaves_none(
    tmp_path_factory: pytest.TempPathFactory, kills: list[int]
) -> None:
    async def scenario() -> None:
        folder = tmp_path_factory.mktemp("pool")
        found = Children(folder / "r.sock")
        server = await asyncio.start_unix_server(found._connected, path=str(found.path))
        pool = ProcessPool(found.command(), processes=3, settle=0.0)
        seen: set[int] = set()
        try:
            await pool.start()
            seen |= {await found.next() for _ in range(3)}
            for slot in kills:
                victim = pool.slots[slot].process
                assert victim is not None
                os.kill(victim.pid, signal.SIGKILL)
                seen.add(await found.next())
                assert len(pool.pids) == 3 and set(pool.pids) <= seen
        finally:
            await pool.close()
            server.close()
            await server.wait_closed()
        assert len(seen) == 3 + len(kills)
        assert not any(_alive(pid) for pid in seen)
        assert sum(s.restarts for s in pool.slots) == len(kills)

    asyncio.run(asyncio.wait_for(scenario(), 30))
