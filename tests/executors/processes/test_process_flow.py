"""Worker processes in normal operation: many chats over 2 workers, each chat in order and
always in the same process; handler errors, time limits and a clean close."""

from __future__ import annotations

import asyncio

import pytest
from proc_harness import BOTS, check_replies, fetch_updates, harness

from tgrunner.errors import HandlerError
from tgrunner.executors.processes import ProcessExecutor, WorkerEvent, WorkerOptions, slot_for
from tgrunner.testing import FakeTelegram

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def _bots_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BOTS))


async def test_many_chats_keep_their_order_and_their_worker(tg: FakeTelegram) -> None:
    users = [tg.user(f"user{i}") for i in range(12)]
    for i in range(15):
        for u in users:
            u.send("pid" if i in (0, 7, 14) else f"{u.id}-{i}")
    updates = await fetch_updates(tg, 12 * 15)
    async with harness(tg) as h:
        await h.submit(updates)
        await h.drain()
        assert h.errors == []
        pids = [h.pid(0), h.pid(1)]
        for u in users:
            texts = [m["text"] for m in tg.replies(u)]
            expected_pid = str(pids[slot_for(f"c:{u.id}", 2)])
            assert texts == [expected_pid if i in (0, 7, 14) else f"{u.id}-{i}" for i in range(15)]
        stats = h.executor.stats()
        assert sum(s.done for s in stats) == len(updates)
        assert all(s.done > 0 and s.in_flight == 0 and s.restarts == 0 for s in stats)


async def test_a_handler_error_comes_back_with_the_workers_traceback(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    alice.send("raise")
    alice.send("still here")
    updates = await fetch_updates(tg, 2)
    async with harness(tg, workers=1) as h:
        await h.submit(updates)
        await h.drain()
    [(update, exc)] = h.errors
    assert update["update_id"] == updates[0]["update_id"]
    assert isinstance(exc, HandlerError)
    assert exc.error_type == "ValueError"
    assert str(exc).startswith("ValueError: boom (in worker 0 (pid ")
    assert "Traceback" in str(exc.__cause__) and "raise ValueError" in str(exc.__cause__)
    assert [m["text"] for m in tg.replies(alice)] == ["still here"]


async def test_a_time_limit_cancels_the_handler_inside_the_worker(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    alice.send("sleep")
    alice.send("after")
    updates = await fetch_updates(tg, 2)
    async with harness(tg, workers=1, handler_timeout=0.5) as h:
        await h.submit(updates)
        await h.drain()
        assert [u["update_id"] for u in h.timeouts] == [updates[0]["update_id"]]
        assert h.errors == []
        # The worker's handler saw the cancellation (and replied) before the chat went on.
        assert [m["text"] for m in tg.replies(alice)] == ["cancelled", "after"]
        assert h.executor.stats()[0].in_flight == 0


async def test_close_lets_the_workers_finish_what_they_run(tg: FakeTelegram) -> None:
    users = [tg.user(f"user{i}") for i in range(6)]
    for u in users:
        u.send("wait 300")
    updates = await fetch_updates(tg, 6)
    events: list[WorkerEvent] = []
    executor = ProcessExecutor(
        "worker_bot:router",
        token=tg.token,
        api_url=tg.api_url,
        share=4,
        options=WorkerOptions(workers=2),
        on_event=events.append,
    )
    await executor.start()
    try:
        running = [asyncio.ensure_future(executor.execute(u)) for u in updates]
        await asyncio.sleep(0)  # sent
        await executor.close()
        assert all(t.done() and t.exception() is None for t in running)
        for u in users:
            assert [m["text"] for m in tg.replies(u)] == ["waited 300"]
        stopped = [e for e in events if e.kind == "stopped"]
        assert len(stopped) == 2 and {e.detail for e in stopped} == {"exited with code 0"}
        await executor.close()  # safe twice
    finally:
        await executor.close(fast=True)


async def test_a_fast_close_kills_the_workers(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    alice.send("sleep")
    [update] = await fetch_updates(tg, 1)
    events: list[WorkerEvent] = []
    executor = ProcessExecutor(
        "worker_bot:router",
        token=tg.token,
        api_url=tg.api_url,
        share=4,
        options=WorkerOptions(workers=1),
        on_event=events.append,
    )
    await executor.start()
    running = asyncio.ensure_future(executor.execute(update))
    assert executor.stats()[0].in_flight == 1  # sent at once
    async with asyncio.timeout(5):
        await executor.close(fast=True)
    await asyncio.wait([running], timeout=5)
    assert running.cancelled()
    assert [e.detail for e in events if e.kind == "died"] == ["was killed by SIGKILL"]


async def test_updates_without_a_key_go_to_the_least_busy_worker(tg: FakeTelegram) -> None:
    users = [tg.user(f"user{i}") for i in range(8)]
    for u in users:
        u.send("wait 200")
    updates = await fetch_updates(tg, 8)
    async with harness(tg, keys=lambda update: None) as h:
        await h.submit(updates)
        await h.drain()
        assert [s.done for s in h.executor.stats()] == [4, 4]
    for u in users:
        check_replies(tg, u, ["waited 200"])
