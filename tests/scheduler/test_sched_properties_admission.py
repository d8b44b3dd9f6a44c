"""Keys and admission under random inputs (hypothesis): what a key function returns, and
``capacity`` / ``lane_room`` / ``LaneFull`` against a model of the lanes.

Handlers wait on one gate, so nothing finishes while the scheduler is probed: the model (items
per key, items in all) is exact at every step.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgrunner.scheduler import LaneFull, Scheduler, SchedulerFull, SchedulerOptions

KEYS = ("a", "b", "c", "d")
EXAMPLE_DEADLINE = 10.0

# Short keys over a tiny alphabet, so different keys share characters ("a:", ":a", "aa").
_text = st.text(alphabet="a:5", max_size=3)
_key_results = st.one_of(
    _text,
    st.binary(max_size=2),
    st.none(),
    st.lists(_text, max_size=3),
    st.lists(_text, max_size=3).map(tuple),
)


def model_keys(result: Any) -> tuple[Hashable, ...]:
    """The contract: a str or bytes is one key, None none, a list or tuple many, once each."""
    if result is None:
        return ()
    if isinstance(result, str | bytes):
        return (result,)
    return tuple(dict.fromkeys(result))


async def run_key_results(results: list[Any]) -> None:
    gate = asyncio.Event()
    log: list[tuple[str, int]] = []

    async def handler(i: int) -> None:
        log.append(("start", i))
        await gate.wait()
        log.append(("end", i))

    n = len(results)
    sched: Scheduler[int] = Scheduler(
        handler,
        options=SchedulerOptions(concurrency=n, max_pending=n, max_pending_per_key=n),
        key=lambda i: results[i],
    )
    keys = [model_keys(r) for r in results]
    async with asyncio.timeout(EXAMPLE_DEADLINE):
        for i in range(n):
            assert sched.keys_for(i) == keys[i]
            sched.submit(i)
        for _ in range(3):
            await asyncio.sleep(0)
        # Every item that shares no key with an earlier one is running now: two different
        # keys never wait for each other, whatever characters they share.
        free = [i for i in range(n) if not any(set(keys[i]) & set(keys[j]) for j in range(i))]
        assert [i for event, i in log if event == "start"] == free
        assert sched.lanes == len({k for ks in keys for k in ks})
        gate.set()
        assert await sched.drain()
    holder: dict[Hashable, int] = {}
    starts: dict[Hashable, list[int]] = defaultdict(list)
    for event, i in log:
        for k in keys[i]:
            if event == "start":
                assert k not in holder, f"{i} started while {holder[k]} held {k!r}"
                holder[k] = i
                starts[k].append(i)
            else:
                del holder[k]
    for k, order in starts.items():
        assert order == [i for i in range(n) if k in keys[i]], f"order of key {k!r}"
    assert (sched.running, sched.pending, sched.lanes) == (0, 0, 0)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_key_results, min_size=1, max_size=25))
def test_key_results_are_read_as_the_contract_says(results: list[Any]) -> None:
    asyncio.run(run_key_results(results))


_keys = st.lists(st.sampled_from(KEYS), max_size=3).map(tuple)


@st.composite
def admissions(draw: st.DrawFn) -> dict[str, Any]:
    concurrency = draw(st.integers(1, 4))
    return {
        "concurrency": concurrency,
        "max_pending": draw(st.integers(concurrency, 24)),
        "max_pending_per_key": draw(st.integers(1, 8)),
        "ops": draw(st.lists(_keys, max_size=40)),
        "final": draw(_keys),
        "precompute": draw(st.booleans()),
    }


async def run_admissions(case: dict[str, Any]) -> None:
    gate = asyncio.Event()

    async def handler(item: tuple[int, tuple[str, ...]]) -> None:
        await gate.wait()

    options = SchedulerOptions(
        concurrency=case["concurrency"],
        max_pending=case["max_pending"],
        max_pending_per_key=case["max_pending_per_key"],
    )
    sched: Scheduler[tuple[int, tuple[str, ...]]] = Scheduler(
        handler, options=options, key=lambda item: item[1]
    )
    max_pending = options.max_pending
    limit = min(options.max_pending_per_key, max_pending)
    lanes: Counter[str] = Counter()
    total = 0

    def room(keys: tuple[str, ...]) -> int:
        return max(0, min([max_pending - total, *(limit - lanes[k] for k in keys)]))

    def submit(index: int, keys: tuple[str, ...]) -> None:
        item = (index, keys)
        if case["precompute"]:
            sched.submit(item, sched.keys_for(item))
        else:
            sched.submit(item)

    def check_refused(index: int, keys: tuple[str, ...]) -> None:
        with pytest.raises(SchedulerFull) as caught:
            submit(index, keys)
        if total == max_pending:
            assert not isinstance(caught.value, LaneFull), "the global limit is no lane's"
        else:
            assert isinstance(caught.value, LaneFull)
            assert caught.value.key in keys
            assert lanes[caught.value.key] >= limit

    async with asyncio.timeout(EXAMPLE_DEADLINE):
        index = 0
        for keys in case["ops"]:
            assert sched.capacity() == max_pending - total
            assert sched.lane_room(keys) == room(keys)
            if room(keys):
                submit(index, keys)
                total += 1
                lanes.update(set(keys))
            else:
                check_refused(index, keys)
            assert sched.pending + sched.running == total
            index += 1
        final = case["final"]
        for _ in range(sched.lane_room(final)):
            submit(index, final)
            total += 1
            lanes.update(set(final))
            index += 1
        assert sched.lane_room(final) == room(final) == 0
        check_refused(index, final)
        # A full lane leaves the global room alone.
        assert sched.capacity() == max_pending - total
        gate.set()
        assert await sched.drain()
    assert (sched.running, sched.pending, sched.lanes) == (0, 0, 0)
    assert sched.capacity() == max_pending
    assert all(sched.lane_room((k,)) == limit for k in KEYS)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(admissions())
def test_lane_room_and_capacity_match_a_model_of_the_lanes(case: dict[str, Any]) -> None:
    asyncio.run(run_admissions(case))
