"""Worker processes when things go wrong: a killed worker, a hung one, a poison update, a bot
that cannot start, and a rolling replacement under load. Every figure the issue asks for
(time to see a death, time to serve again) is measured and printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from proc_harness import BOTS, check_replies, fetch_updates, harness, users_in_slot

from tgrunner.errors import ConfigError, PoisonUpdate
from tgrunner.executors.processes import ProcessExecutor, WorkerEvent, WorkerOptions
from tgrunner.testing import FakeTelegram

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def _bots_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BOTS))


def _replied(tg: FakeTelegram) -> int:
    return len(tg.calls("sendMessage"))


async def test_a_killed_worker_is_seen_at_once_and_its_updates_redone_in_order(
    tg: FakeTelegram,
) -> None:
    users = [tg.user(f"user{i}") for i in range(10)]
    sent = {u.id: [f"{u.id}-{i}" for i in range(30)] for u in users}
    for i in range(30):
        for u in users:
            u.send(sent[u.id][i])
    updates = await fetch_updates(tg, 300)
    async with harness(tg) as h:
        feeding = asyncio.ensure_future(h.submit(updates))
        await tg.wait_for(lambda: _replied(tg) >= 100, timeout=20)
        in_flight = h.executor.stats()[0].in_flight
        killed_at = time.monotonic()
        pid = h.kill(0)
        died = await h.wait_event("died", lambda e: e.pid == pid)
        ready = await h.wait_event("ready", lambda e: e.slot == 0 and e.pid != pid)
        await feeding
        await h.drain()
        assert h.errors == []
        repeats = sum(check_replies(tg, u, sent[u.id]) for u in users)
        stats = h.executor.stats()
    seen, serving = died.at - killed_at, ready.at - died.at
    print(
        f"\nSIGKILL of worker 0 with {in_flight} in flight: seen in {seen * 1000:.1f} ms, "
        f"replacement ready {serving * 1000:.0f} ms later; {repeats} repeated replies"
    )
    assert died.detail == "was killed by SIGKILL"
    assert seen <= 2.0 and serving <= 10.0
    assert repeats <= in_flight
    assert stats[0].restarts == 1 and stats[1].restarts == 0


@pytest.mark.parametrize(
    ("text", "death"),
    [("hang-once", "was killed by SIGTERM"), ("hang-once stubborn", "was killed by SIGKILL")],
)
async def test_a_hung_worker_is_replaced_after_its_heartbeat_timeout_while_others_flow(
    tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, death: str
) -> None:
    monkeypatch.setenv("WORKER_BOT_DIR", str(tmp_path))
    [stuck] = users_in_slot(tg, 0, 1)
    neighbours = users_in_slot(tg, 0, 2)[1:]  # behind the blocked loop, redone after
    others = users_in_slot(tg, 1, 4)
    stuck.send(text)
    sent = {u.id: [f"{u.id}-{i}" for i in range(10)] for u in [*neighbours, *others]}
    for i in range(10):
        for u in [*neighbours, *others]:
            u.send(sent[u.id][i])
    updates = await fetch_updates(tg, 1 + 50)
    async with harness(tg, heartbeat_timeout=1.0, kill_grace=0.5) as h:
        started = time.monotonic()
        feeding = asyncio.ensure_future(h.submit(updates))
        hung = await h.wait_event("hung", lambda e: e.slot == 0)
        # The other worker went on while this one was blocked.
        assert all(len(tg.replies(u)) == 10 for u in others)
        died = await h.wait_event("died", lambda e: e.pid == hung.pid)
        await feeding
        await h.drain()
        assert h.errors == []
    print(
        f"\nhung worker seen {hung.at - started:.2f} s after the hang began (timeout 1 s); "
        f"{died.detail} {(died.at - hung.at) * 1000:.0f} ms later"
    )
    # The last heartbeat may come up to a fifth of the timeout before the hang began.
    assert 0.75 <= hung.at - started <= 5.0
    assert died.detail == death
    assert [m["text"] for m in tg.replies(stuck)] == ["recovered"]
    for u in [*neighbours, *others]:
        check_replies(tg, u, sent[u.id])


@pytest.mark.parametrize(
    ("text", "death"), [("kill", "was killed by SIGKILL"), ("exit", "exited with code 3")]
)
async def test_a_poison_update_is_quarantined_after_three_deaths_while_other_chats_flow(
    tg: FakeTelegram, text: str, death: str
) -> None:
    [poisoner, *neighbours] = users_in_slot(tg, 0, 4)
    others = users_in_slot(tg, 1, 3)
    chats = [*neighbours, *others]
    sent = {u.id: [f"{u.id}-{i}" for i in range(12)] for u in chats}
    poisoner.send("before")
    for i in range(12):
        if i == 3:
            poisoner.send(text)
        for u in chats:
            u.send(sent[u.id][i])
    poisoner.send("after")
    updates = await fetch_updates(tg, 3 + 72)
    poison_id = next(u["update_id"] for u in updates if u["message"]["text"] == text)
    poisoned: list[int | None] = []
    async with harness(tg, on_poison=poisoned.append) as h:
        await h.submit(updates)
        await h.drain()
        stats = h.executor.stats()
        deaths = [e for e in h.events if e.kind == "died"]
    assert poisoned == [poison_id]
    [(update, exc)] = h.errors
    assert update["update_id"] == poison_id
    assert isinstance(exc, PoisonUpdate) and (exc.update_id, exc.deaths) == (poison_id, 3)
    assert [e.update_id for e in h.events if e.kind == "poison"] == [poison_id]
    assert [e.detail for e in deaths] == [death] * 3 and {e.slot for e in deaths} == {0}
    assert stats[0].restarts == 3 and stats[1].restarts == 0
    assert [m["text"] for m in tg.replies(poisoner)] == ["before", "after"]
    for u in chats:
        check_replies(tg, u, sent[u.id])


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("broken_worker_bot:router", "RuntimeError: the database at db.example:5432 is down"),
        ("no_such_bot_module:router", "Cannot import module 'no_such_bot_module'"),
        ("worker_bot:no_such_router", "has no attribute 'no_such_router'"),
    ],
)
async def test_a_bot_that_cannot_start_fails_start_with_the_workers_error(
    tg: FakeTelegram, target: str, error: str
) -> None:
    events: list[WorkerEvent] = []
    executor = ProcessExecutor(
        target,
        token=tg.token,
        api_url=tg.api_url,
        share=2,
        options=WorkerOptions(workers=2),
        on_event=events.append,
    )
    with pytest.raises(ConfigError) as info:
        await executor.start()
    assert error in str(info.value) and "\n" not in str(info.value)
    fatal = [e for e in events if e.kind == "fatal"]
    # Each failed start exits 2; the other slot's starting process is killed at the end.
    ends = [e.detail for e in events if e.kind == "died"]
    assert ends.count("exited with code 2") >= 3
    assert set(ends) <= {"exited with code 2", "was killed by SIGKILL"}
    assert 3 <= len(fatal) <= 6 and all(error in e.detail for e in fatal)
    spawned = [e.pid for e in events if e.kind == "spawned"]
    assert len(spawned) <= 6
    for pid in spawned:  # every process it started has ended and was reaped
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
    await executor.close()  # safe after a failed start


async def test_replacing_workers_under_load_loses_and_repeats_nothing(tg: FakeTelegram) -> None:
    users = [tg.user(f"user{i}") for i in range(10)]
    sent = {u.id: [f"{u.id}-{i}" for i in range(25)] for u in users}
    for i in range(25):
        for u in users:
            u.send(f"wait 10 {sent[u.id][i]}" if i % 5 == 0 else sent[u.id][i])
    updates = await fetch_updates(tg, 250)
    async with harness(tg) as h:
        before = [h.pid(0), h.pid(1)]
        feeding = asyncio.ensure_future(h.submit(updates))
        await tg.wait_for(lambda: _replied(tg) >= 50, timeout=20)
        began = time.monotonic()
        await h.executor.replace_workers()
        took = time.monotonic() - began
        await feeding
        await h.drain()
        assert h.errors == []
        stats = h.executor.stats()
        events = list(h.events)
    print(f"\nreplace_workers() under load took {took:.2f} s for 2 workers")
    assert all(s.pid not in before and s.replaced == 1 and s.restarts == 0 for s in stats)
    stopped = [e for e in events if e.kind == "stopped"]
    assert sorted(e.pid for e in stopped) == sorted(before)
    assert not [e for e in events if e.kind == "died"]
    for u in users:
        expected = [f"waited 10 {t}" if i % 5 == 0 else t for i, t in enumerate(sent[u.id])]
        assert check_replies(tg, u, expected) == 0


async def test_a_worker_slower_than_the_start_up_grace_is_killed(tg: FakeTelegram) -> None:
    executor = ProcessExecutor(
        "slow_import_bot:router",
        token=tg.token,
        api_url=tg.api_url,
        share=1,
        options=WorkerOptions(workers=1, startup_grace=0.5, kill_grace=0.2),
    )
    began = time.monotonic()
    with pytest.raises(ConfigError, match=r"not ready within the start-up grace of 0\.5 s"):
        await executor.start()
    assert time.monotonic() - began < 10


async def test_new_code_that_cannot_start_keeps_the_old_workers_until_it_is_fixed(
    tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_BOT_DIR", str(tmp_path))
    [alice] = users_in_slot(tg, 0, 1)
    [bob] = users_in_slot(tg, 1, 1)
    failures: list[BaseException] = []
    async with harness(tg, "flaky_start_bot:router", on_failure=failures.append) as h:
        old = [h.pid(0), h.pid(1)]
        (tmp_path / "broken").touch()
        with pytest.raises(ConfigError, match="RuntimeError: the new code is broken"):
            await h.executor.replace_workers()
        assert [h.pid(0), h.pid(1)] == old  # still serving
        alice.send("hi")
        await h.submit(await fetch_updates(tg, 1))
        await h.drain()
        assert [m["text"] for m in tg.replies(alice)] == [f"hi from {old[0]}"]
        # A restart that hits the crash limit goes to on_failure; the slot's update waits.
        h.kill(1)
        bob.send("waits")
        await h.submit(await fetch_updates(tg, 1))
        await h.wait_for(lambda: bool(failures), timeout=20)
        [failure] = failures
        assert isinstance(failure, ConfigError) and "the new code is broken" in str(failure)
        assert h.executor.stats()[1].in_flight == 1 and h.scheduler.running == 1
        assert tg.replies(bob) == []
        # Fixed code, reloaded: every slot serves again, the failed one included.
        (tmp_path / "broken").unlink()
        await h.executor.replace_workers()
        await h.drain()
        new = [h.pid(0), h.pid(1)]
        assert new[0] != old[0] and new[1] not in (0, old[1])
        assert [m["text"] for m in tg.replies(bob)] == [f"waits from {new[1]}"]
