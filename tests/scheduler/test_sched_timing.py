"""What the scheduler tells ``observe()``: every finished item once, with times that bracket
what the handler itself saw (see :mod:`tgrunner.scheduler.timing`).

The times come from stamps shared between items (an end is also the start of what it lets
start; items queued in one iteration of the loop share one stamp), so the property checks
bounds, not equality: an item's run covers its handler's own run and fits between its
submit and its ``on_done``; its wait is 0 when it never waited, and otherwise fits between
the start of its burst of submits and its handler's start.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgrunner.scheduler import Scheduler, SchedulerOptions
from tgrunner.scheduler.timing import RunTimes


@dataclass
class Item:
    n: int
    key: int
    pause: float  # seconds the handler sleeps: the work whose time is measured
    fails: bool
    burst: int
    # Stamps taken by the test: its burst's first submit, its own submit, the handler's
    # start and end, and its on_done.
    t_burst: float = 0.0
    t_submit: float = 0.0
    t_start: float = 0.0
    t_end: float = 0.0
    t_done: float = 0.0
    reports: list[tuple[bool, float, float]] = field(default_factory=list)  # (ok, run, waited)


items_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),  # key: few keys, so items wait for each other
        st.sampled_from([0.0, 0.0, 0.001, 0.004]),
        st.booleans(),
        st.integers(0, 2),  # which burst of submits it comes in
    ),
    min_size=1,
    max_size=24,
)


async def _run(spec: list[tuple[int, float, bool, int]], concurrency: int) -> list[Item]:
    items = [Item(n, key, pause, fails, burst) for n, (key, pause, fails, burst) in enumerate(spec)]
    finished = asyncio.Event()
    one_done = asyncio.Event()  # set by each on_done: the next burst comes after an end
    left = len(items)

    async def handler(item: Item) -> None:
        item.t_start = perf_counter()
        if item.pause:
            await asyncio.sleep(item.pause)
        else:
            await asyncio.sleep(0)
        item.t_end = perf_counter()
        if item.fails:
            raise ValueError(f"item {item.n} fails")

    runs: list[float] = []
    waits: list[float] = []
    # The scheduler appends to runs and waits as the ok items end, and calls on_done right
    # after: how far the lists had grown at each on_done tells which value is whose.
    grown: list[tuple[Item, int, int]] = []

    def on_done(item: Item) -> None:
        nonlocal left
        item.t_done = perf_counter()
        grown.append((item, len(runs), len(waits)))
        left -= 1
        one_done.set()
        if not left:
            finished.set()

    def observer(
        item: Item, exc: BaseException | None, timed_out: bool, run: float, waited: float
    ) -> None:
        assert not timed_out
        item.reports.append((exc is None, run, waited))

    def fold() -> None:  # never called: every is out of reach
        raise AssertionError("folded")

    sched: Scheduler[Item] = Scheduler(
        handler,
        options=SchedulerOptions(concurrency=concurrency),
        key=lambda item: (item.key,),
        on_done=on_done,
        on_error=lambda item, exc: None,
    )
    sched.observe(observer, RunTimes(runs, waits, fold=fold, every=10**9))
    for burst in range(3):
        group = [item for item in items if item.burst == burst]
        t_burst = perf_counter()
        for item in group:
            item.t_burst = t_burst
            item.t_submit = perf_counter()
            sched.submit(item)
        if group and left:  # the next burst comes once something has ended since
            one_done.clear()
            await asyncio.wait_for(one_done.wait(), 10)
    await asyncio.wait_for(finished.wait(), 10)
    seen_runs = seen_waits = 0
    for item, n_runs, n_waits in grown:
        if n_runs > seen_runs:  # an ok item: it appended one run and maybe one wait
            assert n_runs == seen_runs + 1
            waited = waits[seen_waits] if n_waits > seen_waits else 0.0
            item.reports.append((True, runs[seen_runs], waited))
        seen_runs, seen_waits = n_runs, n_waits
    return items


@settings(max_examples=60, deadline=None)
@given(spec=items_strategy, concurrency=st.integers(1, 4))
def test_every_item_is_reported_once_with_times_that_bracket_its_run(
    spec: list[tuple[int, float, bool, int]], concurrency: int
) -> None:
    items = asyncio.run(_run(spec, concurrency))
    for item in items:
        assert len(item.reports) == 1, item
        ok, run, waited = item.reports[0]
        assert ok is not item.fails  # ok ones to run_times, failures to the observer
        assert run >= item.t_end - item.t_start
        assert run <= item.t_done - item.t_submit
        assert waited >= 0.0
        assert waited <= item.t_start - item.t_burst


@pytest.mark.timeout(30)
async def test_without_run_times_every_item_goes_to_the_observer() -> None:
    told: list[tuple[Any, bool]] = []
    sched: Scheduler[int] = Scheduler(lambda item: asyncio.sleep(0), key=lambda item: ("k",))
    sched.observe(lambda item, exc, timed_out, run, waited: told.append((item, exc is None)))
    for item in range(5):
        sched.submit(item)
    assert await sched.drain(timeout=5)
    assert told == [(item, True) for item in range(5)]
    sched.observe(None)
    sched.submit(9)
    assert await sched.drain(timeout=5)
    assert len(told) == 5
