"""Shared buckets (the file of one machine, Redis for machines) keep the bound of
``tgrunner.flood.buckets``: in any window ``w`` at most ``burst + w * per_second`` calls leave,
pauses hold every later call of their key, and the answers are the ones of ``BucketTable``.
With random rates, bursts, call times and 429 pauses, on a clock the test moves by hand, and
on the real clocks (the system's CLOCK_MONOTONIC, the Redis server's TIME)."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shared_support import REDIS_URL, Clock, drop_keys, worst_window

from services import need_service
from tgrunner.flood import BucketTable, Rate
from tgrunner.flood.backends.file import FileBuckets
from tgrunner.flood.backends.redis import RedisBuckets
from tgrunner.protocols import SharedBuckets

BACKENDS = ["file", "redis"]

RATES = st.builds(
    Rate,
    st.floats(min_value=0.01, max_value=2000, allow_nan=False, allow_infinity=False),
    st.integers(1, 50),
)
# One step: a gap on the clock, then a call on a key, or a 429 pausing it for some seconds.
STEPS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5, allow_nan=False),
        st.integers(0, 4),
        st.one_of(st.none(), st.floats(min_value=0.001, max_value=30, allow_nan=False)),
    ),
    min_size=20,
    max_size=200,
)
# Rates whose interval is a whole number of microseconds, as Redis keeps it.
EXACT_RATES = st.builds(
    Rate,
    st.sampled_from([0.5, 1, 2, 4, 5, 8, 10, 16, 20, 25, 40, 50, 100, 125, 250, 500, 1000]),
    st.integers(1, 30),
)


@asynccontextmanager
async def shared(backend: str, clock: Callable[[], float] | None) -> AsyncIterator[SharedBuckets]:
    """Fresh buckets of ``backend`` on ``clock`` (None: the backend's own), removed after."""
    buckets: SharedBuckets
    if backend == "file":
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "flood.buckets"
            buckets = FileBuckets(path) if clock is None else FileBuckets(path, clock=clock)
            try:
                yield buckets
            finally:
                await buckets.close()
        return
    prefix = f"tgtest:flood:{uuid.uuid4().hex}:"
    buckets = RedisBuckets(REDIS_URL, prefix=prefix, clock=clock)
    try:
        yield buckets
    finally:
        await buckets.close()
        drop_keys(prefix)


async def play(backend: str, rate: Rate, steps: list) -> tuple[dict, dict]:
    """Replay ``steps`` on a hand-moved clock (whole microseconds, as Redis is sent them):
    each key's calls as (step, asked at, leaves at), its pauses as (step, until)."""
    clock = Clock()
    sends: dict[int, list[tuple[int, float, float]]] = {}
    pauses: dict[int, list[tuple[int, float]]] = {}
    async with shared(backend, clock) as buckets:
        for n, (gap, key, pause) in enumerate(steps):
            clock.now = round((clock.now + gap) * 1e6) / 1e6
            if pause is None:
                wait = await buckets.reserve(f"k{key}", rate)
                sends.setdefault(key, []).append((n, clock.now, clock.now + wait))
            else:
                await buckets.pause(f"k{key}", pause)
                pauses.setdefault(key, []).append((n, clock.now + pause))
    return sends, pauses


def check(rate: Rate, sends: dict, pauses: dict) -> None:
    for key, calls in sends.items():
        times = [at for _, _, at in calls]
        assert all(at >= asked for _, asked, at in calls), "no call leaves before it is asked"
        assert all(b >= a - 1e-6 for a, b in itertools.pairwise(times)), (
            "one key's calls leave in the order they were reserved"
        )
        assert worst_window([(at, at) for at in times], rate) <= 1e-6, key
        for paused, until in pauses.get(key, []):
            for step, _, at in calls:
                if step > paused:
                    assert at >= until - 1e-6, "a pause holds every later call of its key"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_window_holds_more_than_burst_plus_rate(backend: str) -> None:
    if backend == "redis":
        need_service("redis")

    @settings(max_examples=200 if backend == "file" else 80, deadline=None)
    @given(rate=RATES, steps=STEPS)
    def run(rate: Rate, steps: list) -> None:
        check(rate, *asyncio.run(play(backend, rate, steps)))

    run()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_answers_are_the_ones_of_the_local_buckets(backend: str) -> None:
    if backend == "redis":
        need_service("redis")

    @settings(max_examples=150 if backend == "file" else 60, deadline=None)
    @given(rate=EXACT_RATES, steps=STEPS)
    def run(rate: Rate, steps: list) -> None:
        sends, _ = asyncio.run(play(backend, rate, steps))
        table, now = BucketTable(), 1000.0
        expected: dict[int, list[float]] = {}
        for gap, key, pause in steps:
            now = round((now + gap) * 1e6) / 1e6
            if pause is None:
                expected.setdefault(key, []).append(table.reserve(f"k{key}", rate, now))
            else:
                table.pause(f"k{key}", now + pause)
        got = {key: [at for _, _, at in calls] for key, calls in sends.items()}
        if backend == "file":  # the same Bucket code on the same floats
            assert got == expected
        else:  # whole microseconds (a pause is rounded up to one)
            assert got.keys() == expected.keys()
            for key, times in got.items():
                assert times == pytest.approx(expected[key], abs=2.5e-6), key

    run()


async def real_time_play(backend: str, rate: Rate, calls: list) -> None:
    """Calls on the backend's own clock, each known to leave within (before, after) + wait
    on this host's matching clock (Redis's TIME is the wall clock, the file's the
    monotonic one)."""
    now = time.monotonic if backend == "file" else time.time
    spans: list[tuple[float, float]] = []
    pauses: list[tuple[float, float]] = []  # (set no later than, ends no earlier than)
    held: list[tuple[float, float]] = []  # (asked no earlier than, leaves no later than)
    async with shared(backend, None) as buckets:
        for gap, pause in calls:
            if gap:
                await asyncio.sleep(gap)
            before = now()
            if pause is None:
                wait = await buckets.reserve("k", rate)
                after = now()
                # Redis's TIME has whole microseconds: 2 µs either side.
                spans.append((before + wait - 2e-6, after + wait + 2e-6))
                held.append((before, after + wait + 2e-6))
            else:
                await buckets.pause("k", pause)
                pauses.append((now(), before + pause))
    assert worst_window(spans, rate) <= 1e-6
    for set_by, ends in pauses:
        for asked, leaves in held:
            if asked > set_by:
                assert leaves >= ends - 2e-6, "a pause holds every later call"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_bound_holds_on_the_real_clocks(backend: str) -> None:
    if backend == "redis":
        need_service("redis")

    @settings(max_examples=15, deadline=None)
    @given(
        rate=st.builds(Rate, st.floats(min_value=50, max_value=5000), st.integers(1, 20)),
        calls=st.lists(
            st.tuples(
                st.sampled_from([0.0, 0.0, 0.0, 0.0005, 0.002]),
                st.one_of(st.none(), st.none(), st.floats(min_value=0.001, max_value=0.02)),
            ),
            min_size=10,
            max_size=80,
        ),
    )
    def run(rate: Rate, calls: list) -> None:
        asyncio.run(real_time_play(backend, rate, calls))

    run()
