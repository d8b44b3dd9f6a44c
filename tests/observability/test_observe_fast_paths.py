"""The per-update fast paths of Metrics record exactly what the plain methods do.

``scheduler_observer`` and ``api_result`` are written for speed (a closure, durations kept
in lists and folded into the histograms every ``fold_every``); a property checks them against
``handled`` and ``api_call`` on random traffic, through the exposition a scrape sees (sums
summed in another order may differ in their last bits), and checks ``received_batch`` against
one ``received`` per update.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from tgrunner.errors import BadRequest, NetworkError, PoisonUpdate
from tgrunner.observability import Metrics, api_status
from tgrunner.observability._families import BUCKETS

ERRORS: list[BaseException | None] = [
    None,
    RuntimeError("boom"),
    PoisonUpdate("poison", 7),
    BadRequest("sendMessage", 400, "Bad Request: chat not found"),
    NetworkError("sendMessage", "reset"),
]
SECONDS = st.one_of(st.sampled_from([0.0, *BUCKETS]), st.floats(min_value=0.0, max_value=120.0))
FINISHED = st.tuples(
    st.integers(1, 30), st.sampled_from(range(len(ERRORS))), st.booleans(), SECONDS, SECONDS
)
KINDS = st.sampled_from(["message", "callback_query", "no_such_kind", "poll_answer", ""])
CALLS = st.tuples(
    st.sampled_from(["sendMessage", "getMe", "sendmessage", "notAMethod"]),
    st.sampled_from(range(len(ERRORS))),
    SECONDS,
)


def exposition(metrics: Metrics) -> set[str]:
    return set(generate_latest(metrics.registry).decode().splitlines())


def samples(metrics: Metrics) -> dict[str, float]:
    """The exposition's samples, by name and labels."""
    found = {}
    for line in exposition(metrics):
        if not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            found[series] = float(value)
    return found


def same_values(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-9) for k in a
    )


def snapshot_values(metrics: Metrics) -> dict[str, float]:
    flat = {}
    for name, series in orjson.loads(metrics.snapshot())["values"].items():
        for labels, value in series:
            for i, v in enumerate(value if isinstance(value, list) else [value]):
                flat[f"{name}{labels}[{i}]"] = v
    return flat


def received_by_kind(metrics: Metrics, source: str) -> Counter[str]:
    """The exposition's tgrunner_updates_received_total of ``source``, by kind."""
    found = Counter[str]()
    prefix = "tgrunner_updates_received_total{"
    for series, n in samples(metrics).items():
        if series.startswith(prefix):
            labels = dict(part.split("=") for part in series[len(prefix) : -1].split(","))
            assert labels.pop("source") == f'"{source}"'
            found[labels["kind"].strip('"')] += int(n)
    return found


def outcome(exc: BaseException | None, timed_out: bool) -> str:
    if timed_out:
        return "timeout"
    if exc is None:
        return "ok"
    return "poison" if isinstance(exc, PoisonUpdate) else "error"


@pytest.mark.timeout(60)
@settings(max_examples=60, deadline=None)
@given(
    finished=st.lists(FINISHED, max_size=40),
    skipped=st.sets(st.integers(1, 30), max_size=5),
    kinds=st.lists(KINDS, max_size=30),
    calls=st.lists(CALLS, max_size=30),
    fold_every=st.integers(1, 8),
    reads=st.sets(st.integers(0, 40), max_size=4),
)
def test_the_fast_paths_record_what_the_plain_methods_record(
    finished: list[tuple[int, int, bool, float, float]],
    skipped: set[int],
    kinds: list[str],
    calls: list[tuple[str, int, float]],
    fold_every: int,
    reads: set[int],
) -> None:
    fast, plain = Metrics(fold_every=fold_every), Metrics()
    observe = fast.scheduler_observer(skipped)
    for n, (uid, err, timed_out, run, waited) in enumerate(finished):
        if n in reads:
            fast.snapshot()  # a read in the middle folds what waits, and changes nothing
        exc = ERRORS[err]
        observe({"update_id": uid}, exc, timed_out, run, waited)
        if uid not in skipped:
            plain.handled(outcome(exc, timed_out), run, waited)
    batch: list[dict[str, Any]] = [
        {"update_id": n, kind: {}} if kind else {"update_id": n} for n, kind in enumerate(kinds)
    ]
    fast.received_batch("webhook", batch)
    for update in batch:
        plain.received("webhook", update)
    for method, err, seconds in calls:
        fast.api_result(method, ERRORS[err], seconds)
        plain.api_call(method, api_status(ERRORS[err]), seconds)
    assert same_values(samples(fast), samples(plain))
    assert same_values(snapshot_values(fast), snapshot_values(plain))
    expected = Counter(k if k in ("message", "callback_query", "poll_answer") else "unknown"
                       for k in kinds)  # fmt: skip
    assert received_by_kind(fast, "webhook") == expected


@pytest.mark.timeout(10)
def test_durations_fold_into_the_right_buckets_at_fold_every() -> None:
    metrics = Metrics(fold_every=3)
    observe = metrics.scheduler_observer(set())
    for run in (0.001, 0.0011, 70.0):  # the third fills the list: folded now
        observe({"update_id": 1}, None, False, run, 0.0)
    assert metrics._ok_runs == []
    seen = samples(metrics)
    assert seen['tgrunner_handle_duration_seconds_bucket{le="0.001"}'] == 1
    assert seen['tgrunner_handle_duration_seconds_bucket{le="0.0025"}'] == 2
    assert seen['tgrunner_handle_duration_seconds_bucket{le="60.0"}'] == 2
    assert seen['tgrunner_handle_duration_seconds_bucket{le="+Inf"}'] == 3
    assert seen["tgrunner_handle_duration_seconds_sum"] == pytest.approx(70.0021)
    assert seen['tgrunner_lane_wait_seconds_bucket{le="0.001"}'] == 3
    assert seen['tgrunner_updates_handled_total{outcome="ok"}'] == 3


@pytest.mark.timeout(10)
def test_fold_every_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="fold_every"):
        Metrics(fold_every=0)


@pytest.mark.timeout(10)
def test_the_observer_leaves_out_updates_skipped_at_a_stop() -> None:
    metrics, skipped = Metrics(), {5}
    observe = metrics.scheduler_observer(skipped)
    observe({"update_id": 5}, None, False, 0.001, 0.0)
    skipped.clear()  # the set is read at each call, as the runner changes it
    observe({"update_id": 5}, None, False, 0.001, 0.0)
    assert 'tgrunner_updates_handled_total{outcome="ok"} 1.0' in exposition(metrics)


FIELDS = st.sampled_from(["message", "callback_query", "poll_answer", "no_such_kind", "extra"])
# An update: its update_id somewhere among its fields (a source's order, or not).
UPDATES = st.tuples(st.lists(FIELDS, max_size=3, unique=True), st.integers(0, 3))
# Batches of one kind (the usual case, and the fast path), or of anything.
BATCHES = st.one_of(
    FIELDS.flatmap(lambda kind: st.lists(st.just(([kind], 0)), max_size=30)),
    st.lists(UPDATES, max_size=30),
)


def first_kind(fields: list[str]) -> str:
    kind = fields[0] if fields else ""
    return kind if kind in ("message", "callback_query", "poll_answer") else "unknown"


@pytest.mark.timeout(60)
@settings(max_examples=200, deadline=None)
@given(batches=st.lists(BATCHES, max_size=4))
def test_received_batches_count_each_update_by_its_first_field(
    batches: list[list[tuple[list[str], int]]],
) -> None:
    metrics, expected = Metrics(), Counter[str]()
    uid = 0
    for shapes in batches:
        batch = []
        for fields, at in shapes:
            uid += 1
            names = list(fields)
            names.insert(min(at, len(names)), "update_id")
            batch.append({name: uid if name == "update_id" else {} for name in names})
            expected[first_kind(fields)] += 1
        metrics.received_batch("polling", batch)
    assert received_by_kind(metrics, "polling") == expected
