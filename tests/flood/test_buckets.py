"""The token buckets: never more than the rate in any window, pauses honoured, calls of one key
served in order, and reclaiming idle keys changes no answer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgrunner.flood import BucketTable, Rate

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
    min_size=1,
    max_size=300,
)


def play(table: BucketTable, rate: Rate, steps: list, reclaim: bool = False):
    """Replay ``steps``: each key's calls as (step, asked at, leaves at), its pauses as
    (step, until)."""
    now, sends, pauses = 0.0, {}, {}
    for n, (gap, key, pause) in enumerate(steps):
        now += gap
        if reclaim:
            table.reclaim(now, limit=2)
        if pause is None:
            sends.setdefault(key, []).append((n, now, table.reserve(key, rate, now)))
        else:
            table.pause(key, now + pause)
            pauses.setdefault(key, []).append((n, now + pause))
    return sends, pauses


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None)
@given(rate=RATES, steps=STEPS)
def test_no_window_holds_more_than_burst_plus_rate(rate: Rate, steps: list) -> None:
    sends, pauses = play(BucketTable(reclaim_every=3, sweep=2), rate, steps)
    for key, calls in sends.items():
        times = [at for _, _, at in calls]
        assert all(at >= asked for _, asked, at in calls), "no call leaves before it is asked"
        assert times == sorted(times), "one key's calls leave in the order they were reserved"
        for i, start in enumerate(times):
            for j in range(i, len(times)):
                window = times[j] - start
                allowed = rate.burst + window * rate.per_second
                assert j - i + 1 <= allowed + 1e-6 * max(1.0, allowed), (key, i, j, window)
        for paused, until in pauses.get(key, []):
            for step, _, at in calls:
                if step > paused:
                    assert at >= until - 1e-9, "a pause holds every later call of its key"


@pytest.mark.timeout(120)
@settings(max_examples=200, deadline=None)
@given(rate=RATES, steps=STEPS)
def test_reclaiming_idle_buckets_changes_no_answer(rate: Rate, steps: list) -> None:
    kept = play(BucketTable(reclaim_every=10**9), rate, steps)
    swept = play(BucketTable(reclaim_every=1, sweep=1), rate, steps, reclaim=True)
    assert kept == swept


@pytest.mark.timeout(30)
def test_a_million_chats_over_time_keep_the_table_small() -> None:
    table, rate = BucketTable(), Rate(1.0, 3)
    now, peak = 0.0, 0
    for chat in range(1_000_000):
        now += 0.001  # 1,000 new chats a second, each sending once
        assert table.reserve(("chat", chat), rate, now) == now
        peak = max(peak, len(table))
    assert peak < 10_000, peak
    table.reclaim(now + 10)
    assert len(table) == 0


@pytest.mark.timeout(10)
def test_a_burst_leaves_at_once_then_the_rate_holds() -> None:
    table, rate = BucketTable(), Rate(2.0, burst=3)
    times = [table.reserve("k", rate, 100.0) for _ in range(6)]
    assert times == [100.0, 100.0, 100.0, 100.5, 101.0, 101.5]
    table.pause("k", 200.0)
    assert table.reserve("k", rate, 150.0) == 200.0
    assert table.paused_until("k") == 200.0
    assert table.paused_until("other") == -math.inf


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("per_second", "burst", "message"),
    [(-1, 1, "above 0"), (0, 1, "above 0"), (math.inf, 1, "finite"), (1, 0, "burst"),
     (1, 1.5, "burst"), (math.nan, 1, "finite")],
)  # fmt: skip
def test_bad_rates_are_refused_with_what_to_give(per_second, burst, message) -> None:
    with pytest.raises(ValueError, match=message):
        Rate(per_second, burst)
