"""The per-update fast paths of Metrics record exactly what the plain methods do.

``scheduler_observer`` and ``api_result`` are written for speed (a closure, a str-keyed
counter); a property checks them against ``handled`` and ``api_call`` on random traffic,
through the exposition a scrape sees, and checks ``received_batch`` against one ``received``
per update.
"""

from __future__ import annotations

from typing import Any

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
KINDS = st.sampled_from(["message", "callback_query", "no_such_kind", "poll_answer"])
CALLS = st.tuples(
    st.sampled_from(["sendMessage", "getMe", "sendmessage", "notAMethod"]),
    st.sampled_from(range(len(ERRORS))),
    SECONDS,
)


def exposition(metrics: Metrics) -> set[str]:
    return set(generate_latest(metrics.registry).decode().splitlines())


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
)
def test_the_fast_paths_record_what_the_plain_methods_record(
    finished: list[tuple[int, int, bool, float, float]],
    skipped: set[int],
    kinds: list[str],
    calls: list[tuple[str, int, float]],
) -> None:
    fast, plain = Metrics(), Metrics()
    observe = fast.scheduler_observer(skipped)
    for uid, err, timed_out, run, waited in finished:
        exc = ERRORS[err]
        observe({"update_id": uid}, exc, timed_out, run, waited)
        if uid not in skipped:
            plain.handled(outcome(exc, timed_out), run, waited)
    batch: list[dict[str, Any]] = [{"update_id": n, kind: {}} for n, kind in enumerate(kinds)]
    fast.received_batch("webhook", batch)
    for update in batch:
        plain.received("webhook", update)
    for method, err, seconds in calls:
        fast.api_result(method, ERRORS[err], seconds)
        plain.api_call(method, api_status(ERRORS[err]), seconds)
    assert exposition(fast) == exposition(plain)
    assert fast.snapshot() == plain.snapshot()


@pytest.mark.timeout(10)
def test_the_observer_leaves_out_updates_skipped_at_a_stop() -> None:
    metrics, skipped = Metrics(), {5}
    observe = metrics.scheduler_observer(skipped)
    observe({"update_id": 5}, None, False, 0.001, 0.0)
    skipped.clear()  # the set is read at each call, as the runner changes it
    observe({"update_id": 5}, None, False, 0.001, 0.0)
    assert 'tgrunner_updates_handled_total{outcome="ok"} 1.0' in exposition(metrics)
