"""``offload()`` in real processes: pool processes never outlive a SIGKILLed parent (busy in
Python, busy in C holding the GIL, or idle), a pool process whose pipe closes exits even mid
call, and a native bot run by ``tgrunner run`` (alone, and with ``--workers 2``) offloads,
replies over real HTTP to FakeTelegram, and ends its pool when it stops."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from offload_support import alive, wait_gone

from processes import end_started_bots, start_bot
from tgrunner.jobs._child import CALL, INIT, READY, read_frame, write_frame
from tgrunner.jobs._pool import CHILD
from tgrunner.testing import FakeTelegram

HERE = Path(__file__).parent
BOTS = HERE.parent / "bots"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
async def _end_our_processes() -> AsyncIterator[None]:
    """A failing test must not leave its processes running: kill, by PID, what it started."""
    yield
    await end_started_bots()


class Listener:
    """Loopback: each of :mod:`offload_work`'s busy functions connects and sends its PID."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.lines.put_nowait((await reader.readline()).decode().strip())
        await reader.read()
        writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener()
    found.server = await asyncio.start_server(found._client, "127.0.0.1", 0)
    async with found.server:
        yield found


# A process using offload(): one pool process runs Python for ever, one computes in C with
# the GIL held (no thread of it runs Python), one is idle. It sends the three PIDs to the
# listener (not on stderr: a pool process that survived would hold that pipe open).
HOST = """
import asyncio, socket, sys
import offload_work as work
from tgrunner.jobs import configure_offload, offload, offload_pids

async def main(port):
    configure_offload(3)
    busy = [asyncio.ensure_future(offload(work.spin_forever, port)),
            asyncio.ensure_future(offload(work.hold_the_gil, port))]
    await offload(work.pid)
    pids = " ".join(map(str, offload_pids()))
    socket.create_connection(("127.0.0.1", port)).sendall(f"-1 {pids}\\n".encode())
    await asyncio.gather(*busy)

asyncio.run(main(int(sys.argv[1])))
"""


def _kill_leftovers(pids: list[int]) -> None:
    """SIGKILL, by PID, those of ``pids`` that still run our pool script (a failed test's)."""
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if CHILD.encode() in cmdline:
            os.kill(pid, signal.SIGKILL)


async def test_no_pool_process_outlives_a_sigkilled_parent(
    listener: Listener, tmp_path: Path
) -> None:
    with (tmp_path / "host.log").open("wb") as log:
        host = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOST, str(listener.port),
            cwd=HERE, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    pids: list[int] = []
    try:
        async with asyncio.timeout(30):
            for _ in range(3):  # the two busy calls and the host's list, in any order
                line = await listener.lines.get()
                if line.startswith("-1 "):
                    pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
        host.kill()  # SIGKILL, by PID: no atexit, no shutdown_offload()
        await host.wait()
        assert await wait_gone(pids, timeout=5) == [], "pool processes outlived their parent"
    finally:
        if host.returncode is None:
            host.kill()
            await host.wait()
        _kill_leftovers(pids)


def test_a_pool_process_exits_when_its_pipe_closes_even_mid_call() -> None:
    # This test is the parent: the kernel's parent-death signal never comes, so the pool
    # process's own watch of its pipe (the only one off Linux) must end it.
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        proc = subprocess.Popen(
            [sys.executable, "-P", CHILD, str(to_r), str(from_w), str(os.getpid())],
            pass_fds=(to_r, from_w),
            stdin=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        try:
            write_frame(to_w, INIT, pickle.dumps({"sys_path": sys.path}))
            assert read_frame(from_r) == (READY, b"")
            args = pickle.dumps(((server.getsockname()[1],), {}))
            payload = ("offload_work.spin_forever", ("offload_work", "spin_forever"), None, args)
            write_frame(to_w, CALL, pickle.dumps(payload))
            conn, _ = server.accept()
            with conn, conn.makefile() as said:
                assert said.readline().strip() == str(proc.pid)  # it runs the call
                os.close(to_w)
                to_w = -1
                assert proc.wait(5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for fd in (to_w, from_r):
                if fd >= 0:
                    os.close(fd)


async def _pool_of(tg: FakeTelegram, name: str) -> tuple[int, list[int]]:
    user = tg.user(name)
    user.send("pool")
    [reply] = await tg.wait_for_replies(user, 1, timeout=30)
    handler, *pool = (int(p) for p in reply["text"].split())
    return handler, pool


async def test_a_bot_offloads_and_its_clean_stop_ends_the_pool(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "offload_bot:router", cwd=BOTS)
    users = [tg.user(f"User{i}") for i in range(6)]
    for i, user in enumerate(users):
        for n in range(5):
            user.send(f"square {10 * i + n}")
    for i, user in enumerate(users):
        replies = await tg.wait_for_replies(user, 5, timeout=60)
        assert [r["text"] for r in replies] == [str((10 * i + n) ** 2) for n in range(5)]
    crasher = tg.user("Crasher")
    crasher.send("crash")
    [reply] = await tg.wait_for_replies(crasher, 1, timeout=30)
    assert reply["text"] == "crashed 5"
    handler, pool = await _pool_of(tg, "Watcher")
    assert handler == bot.proc.pid and pool and handler not in pool
    err = await bot.stop()  # SIGTERM: exit 0, no traceback
    assert "exited with code 5" in err  # the crash was logged
    assert [pid for pid in pool if alive(pid)] == []


async def test_each_worker_process_offloads_to_a_pool_of_its_share(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "offload_bot:router", "--workers", "2", cwd=BOTS)
    await bot.wait_for_line("worker processes ready", timeout=30)
    users = [tg.user(f"User{i}") for i in range(8)]
    for i, user in enumerate(users):
        user.send(f"square {i}")
    for i, user in enumerate(users):
        [reply] = await tg.wait_for_replies(user, 1, timeout=60)
        assert reply["text"] == str(i * i)
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    seen: dict[int, list[int]] = {}
    for i in range(8):  # chats are spread over both workers by hash
        handler, pool = await _pool_of(tg, f"Asker{i}")
        assert handler != bot.proc.pid and len(pool) == share and handler not in pool
        seen[handler] = pool
    all_pool = [pid for pool in seen.values() for pid in pool]
    assert len(set(all_pool)) == len(all_pool)  # no two workers share a pool
    await bot.stop()
    assert await wait_gone(all_pool, timeout=5) == []
