"""The scheduler's contract under random workloads (hypothesis).

Items draw their keys from a small key space so they collide. Handlers yield a random number
of times, fail, hang until their time limit, or swallow the cancellation. Their error and
timeout hooks return at once, yield, raise, hang until their own time limit, or swallow that
cancellation too. Every run is checked against the event log it leaves: per-key order and
exclusion of handlers, the global limit counting hooks, one run and one report per item,
reports before hooks, and an idle scheduler at the end.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgrunner.scheduler import Scheduler, SchedulerOptions

KEYS = ("a", "b", "c", "d")
TIME_LIMIT = 0.02
HOOK_LIMIT = 0.02
GRACE = 0.02
# Each example must fail fast rather than hang the suite if the scheduler deadlocks.
EXAMPLE_DEADLINE = 10.0
SWALLOWING = ("swallow_quick", "swallow_stuck")


class Boom(Exception):
    """The failure a handler or hook raises on purpose."""


@dataclass(frozen=True)
class Item:
    index: int
    keys: tuple[str, ...]  # may list a key twice: the scheduler must cope
    kind: str  # ok | fail | hang | swallow_quick | swallow_stuck
    hook: str  # sync | quick | raise | hang | swallow_quick | swallow_stuck
    yields: int  # how long it runs, in event-loop turns
    pause: int  # turns the submitter waits after submitting it


@dataclass(frozen=True)
class Workload:
    items: tuple[Item, ...]
    concurrency: int
    max_pending: int
    max_pending_per_key: int
    time_limit: bool


@st.composite
def workloads(draw: st.DrawFn, *, time_limit: bool, hooks_only: bool = False) -> Workload:
    kinds = ["ok"] * 6 + ["fail"] * 2
    hooks = ["sync", "quick", "quick", "raise"]
    if time_limit:
        kinds += ["hang", *SWALLOWING]
        hooks += ["hang", *SWALLOWING]
    if hooks_only:
        # Every item runs a hook, and most hooks outlive their time limit.
        kinds = ["fail", "hang"] if time_limit else ["fail"]
        hooks = ["raise", "hang", *SWALLOWING]
    n = draw(st.integers(1, 30))
    items = tuple(
        Item(
            index=i,
            keys=tuple(draw(st.lists(st.sampled_from(KEYS), max_size=3))),
            kind=draw(st.sampled_from(kinds)),
            hook=draw(st.sampled_from(hooks)),
            yields=draw(st.integers(0, 6)),
            pause=draw(st.integers(0, 2)),
        )
        for i in range(n)
    )
    concurrency = draw(st.integers(1, 6))
    return Workload(
        items=items,
        concurrency=concurrency,
        max_pending=draw(st.integers(concurrency, concurrency + 12)),
        max_pending_per_key=draw(st.integers(1, 8)),
        time_limit=time_limit,
    )


@dataclass
class Run:
    """What happened, in order: ``log`` holds (event, item index) pairs."""

    log: list[tuple[str, int]] = field(default_factory=list)
    running_seen: list[int] = field(default_factory=list)
    errors: dict[int, BaseException] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    hook_cancelled: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)
    hooks_live: int = 0


async def swallow(then_stuck: bool) -> None:
    if then_stuck:
        # Sleeps past the grace timer, which was armed before this sleep.
        await asyncio.sleep(GRACE * 3)
    else:
        for _ in range(3):
            await asyncio.sleep(0)


async def run_workload(w: Workload) -> tuple[Run, Scheduler[Item]]:
    run = Run()
    sched: Scheduler[Item]
    progress = asyncio.Event()  # set by on_done: a lane may have room again
    hooks_idle = asyncio.Event()
    hooks_idle.set()

    async def handler(item: Item) -> None:
        run.log.append(("start", item.index))
        run.running_seen.append(sched.running)
        try:
            for _ in range(item.yields):
                await asyncio.sleep(0)
            if item.kind == "fail":
                raise Boom(item.index)
            if item.kind in ("hang", *SWALLOWING):
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    run.cancelled.add(item.index)
                    if item.kind == "hang":
                        raise
                    await swallow(item.kind == "swallow_stuck")
        except asyncio.CancelledError:
            run.cancelled.add(item.index)
            raise
        finally:
            run.log.append(("end", item.index))

    async def hook_body(item: Item) -> None:
        run.log.append(("hook_start", item.index))
        run.running_seen.append(sched.running)
        try:
            await asyncio.sleep(0)
            if item.hook == "raise":
                raise Boom(item.index)
            if item.hook in ("hang", *SWALLOWING):
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    run.hook_cancelled.add(item.index)
                    if item.hook == "hang":
                        raise
                    await swallow(item.hook == "swallow_stuck")
        finally:
            run.log.append(("hook_end", item.index))
            run.hooks_live -= 1
            if not run.hooks_live:
                hooks_idle.set()

    def hook(item: Item) -> Any:
        if item.hook == "sync":
            return None
        run.hooks_live += 1
        hooks_idle.clear()
        return hook_body(item)

    def on_error(item: Item, exc: BaseException) -> Any:
        run.log.append(("error", item.index))
        run.errors[item.index] = exc
        return hook(item)

    def on_timeout(item: Item) -> Any:
        run.log.append(("timeout", item.index))
        return hook(item)

    def on_done(item: Item) -> None:
        run.log.append(("done", item.index))
        run.done.add(item.index)
        progress.set()

    def on_stuck(item: Item) -> None:
        # A stuck handler is reported before its item is done, a stuck hook after.
        run.log.append(("hook_stuck" if item.index in run.done else "stuck", item.index))

    sched = Scheduler(
        handler,
        options=SchedulerOptions(
            concurrency=w.concurrency,
            max_pending=w.max_pending,
            max_pending_per_key=w.max_pending_per_key,
            handler_timeout=TIME_LIMIT if w.time_limit else None,
            cancel_grace=GRACE,
            hook_timeout=HOOK_LIMIT,
        ),
        key=lambda item: item.keys,
        on_done=on_done,
        on_error=on_error,
        on_timeout=on_timeout,
        on_stuck=on_stuck,
    )
    async with asyncio.timeout(EXAMPLE_DEADLINE):
        for item in w.items:
            await sched.wait_capacity(1)
            keys = sched.keys_for(item)
            # As the runtime does: an item whose lane is full waits outside the scheduler.
            while not sched.lane_room(keys):
                progress.clear()
                await progress.wait()
                await sched.wait_capacity(1)
            assert 0 < sched.lane_room(keys) <= sched.capacity() <= w.max_pending
            sched.submit(item, keys)
            for _ in range(item.pause):
                await asyncio.sleep(0)
        assert await sched.drain()
        await hooks_idle.wait()  # detached hooks too, so the log is complete
    return run, sched


def check_order_and_exclusion(w: Workload, run: Run) -> None:
    """Handlers sharing a key never overlap and start in submit order; each runs once.

    A key is held from its handler's start until the item is reported done (a stuck
    handler is reported while it still runs). Slots are held by handlers until they end
    and by hooks until they end or are detached: never more than ``concurrency``.
    """
    keys = {item.index: set(item.keys) for item in w.items}
    holder: dict[str, int] = {}
    starts: dict[str, list[int]] = defaultdict(list)
    work: Counter[int] = Counter()  # per item: its handler and its hook, while they run
    detached: set[int] = set()

    def busy() -> int:
        return sum(1 for n in work.values() if n > 0)

    for event, i in run.log:
        if event == "start":
            work[i] += 1
            assert busy() <= w.concurrency, "more handlers and hooks ran than the limit"
            for k in keys[i]:
                assert k not in holder, f"{i} started while {holder.get(k)} held {k}"
                holder[k] = i
                starts[k].append(i)
        elif event == "hook_start":
            work[i] += 1
            assert busy() <= w.concurrency, "more handlers and hooks ran than the limit"
        elif event == "end" or (event == "hook_end" and i not in detached):
            work[i] -= 1
        elif event == "hook_stuck":
            work[i] -= 1  # detached: it gave back its slot, and its end counts no more
            detached.add(i)
        elif event == "done":
            for k in keys[i]:
                assert holder.pop(k) == i
    assert holder == {}
    for k, order in starts.items():
        assert order == sorted(i for i, ks in keys.items() if k in ks), f"order of key {k}"
    assert Counter(i for e, i in run.log if e == "start") == Counter(range(len(w.items)))
    assert all(n <= w.concurrency for n in run.running_seen)


def check_reports(w: Workload, run: Run) -> None:
    """One on_done per item, then the hook its outcome calls for, and only that hook."""
    at: dict[tuple[str, int], list[int]] = defaultdict(list)
    for pos, (event, i) in enumerate(run.log):
        at[event, i].append(pos)
    for item in w.items:
        i = item.index
        assert len(at["done", i]) == 1, f"item {i} reported done {len(at['done', i])} times"
        timed_out = bool(at["timeout", i])
        errored = bool(at["error", i])
        assert len(at["timeout", i]) <= 1
        assert len(at["error", i]) <= 1
        assert not (timed_out and errored)
        if timed_out:
            assert i in run.cancelled, "a timeout is reported only for a cancelled handler"
        if errored:
            assert isinstance(run.errors[i], Boom)
        if item.kind == "fail":
            assert errored or timed_out
        elif item.kind == "ok":
            assert not errored
        else:
            assert timed_out
        assert bool(at["stuck", i]) == (item.kind == "swallow_stuck")
        done = at["done", i][0]
        assert all(pos < done for pos in at["stuck", i]), f"stuck after done for {i}"
        for hook in ("error", "timeout", "hook_start"):
            assert all(pos > done for pos in at[hook, i]), f"{hook} before done for {i}"
        if item.kind != "swallow_stuck":
            assert at["end", i][0] < done
        awaited = (errored or timed_out) and item.hook != "sync"
        assert len(at["hook_start", i]) == len(at["hook_end", i]) == int(awaited)
        if awaited and item.hook in ("hang", *SWALLOWING):
            assert i in run.hook_cancelled, f"the hook of {i} outlived its time limit"
        stuck_hook = awaited and item.hook == "swallow_stuck"
        assert len(at["hook_stuck", i]) == int(stuck_hook), f"hook of {i} stuck reports"


def check_idle(w: Workload, sched: Scheduler[Item]) -> None:
    assert (sched.running, sched.pending, sched.lanes, sched.stuck) == (0, 0, 0, 0)
    assert sched.capacity() == w.max_pending
    assert sched.lane_room(KEYS) == min(w.max_pending, w.max_pending_per_key)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(time_limit=False))
def test_order_limits_and_reports_hold(w: Workload) -> None:
    run, sched = asyncio.run(run_workload(w))
    check_order_and_exclusion(w, run)
    check_reports(w, run)
    check_idle(w, sched)


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(time_limit=True))
def test_order_limits_and_reports_hold_with_time_limits(w: Workload) -> None:
    run, sched = asyncio.run(run_workload(w))
    check_order_and_exclusion(w, run)
    check_reports(w, run)
    check_idle(w, sched)


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(time_limit=True, hooks_only=True))
def test_hooks_that_hang_raise_or_ignore_cancellation_never_hold_a_key_or_a_slot(
    w: Workload,
) -> None:
    run, sched = asyncio.run(run_workload(w))
    check_order_and_exclusion(w, run)
    check_reports(w, run)
    check_idle(w, sched)


async def run_then_cancel(w: Workload, turns: int) -> tuple[list[tuple[str, int]], Any]:
    log: list[tuple[str, int]] = []

    async def handler(item: Item) -> None:
        log.append(("start", item.index))
        try:
            for _ in range(item.yields):
                await asyncio.sleep(0)
            if item.kind == "fail":
                raise Boom(item.index)
        finally:
            log.append(("end", item.index))

    sched: Scheduler[Item] = Scheduler(
        handler,
        options=SchedulerOptions(
            concurrency=w.concurrency,
            max_pending=max(w.max_pending, len(w.items)),
            max_pending_per_key=len(w.items),
        ),
        key=lambda item: item.keys,
        on_done=lambda item: log.append(("done", item.index)),
        on_error=lambda item, exc: log.append(("error", item.index)),
    )
    async with asyncio.timeout(EXAMPLE_DEADLINE):
        for item in w.items:
            sched.submit(item)
        for _ in range(turns):
            await asyncio.sleep(0)
        mark = len(log)
        await sched.cancel_all()
        log.append(("cancelled", -1))
        after = len(log)
        # Nothing dropped may start later, and nothing cancelled may be reported.
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(log) == after
        assert all(event in ("end",) for event, _ in log[mark : after - 1])
    return log, sched


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(time_limit=False), st.integers(0, 15))
def test_cancel_all_reports_only_what_finished(w: Workload, turns: int) -> None:
    log, sched = asyncio.run(run_then_cancel(w, turns))
    assert (sched.running, sched.pending, sched.lanes) == (0, 0, 0)
    done = Counter(i for event, i in log if event == "done")
    assert all(n == 1 for n in done.values())
    ended_before = set()
    for event, i in log:
        if event == "cancelled":
            break
        if event == "end":
            ended_before.add(i)
    # Only handlers that ended before cancel_all are reported. One that ended just before it,
    # with its completion not yet processed, is dropped: redelivered later, never lost.
    assert set(done) <= ended_before
