"""Aggregator: worker snapshots merged per slot, monotonic across restarts, equal to what was
reported.

The property test replays random histories: worker processes record calls, report snapshots,
die (with a final snapshot, without one, or with one that arrives late), are replaced, and the
supervisor scrapes. The reference for each scrape is one fresh Metrics fed every call that some
delivered snapshot covered, so the check does not reuse the merge it checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tgrunner.observability import Aggregator, Metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
MONOTONIC = ("_total", "_bucket", "_count", "_sum")
SLOTS = 3
# Exact binary fractions keep sums exact whatever the order of the additions.
DURATIONS = (0.0009765625, 0.00390625, 0.25, 2.0, 96.0)


def scrape(metrics: Metrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.endswith(MONOTONIC)
    }


Call = tuple[str, Any, Any, Any]


def play(metrics: Metrics, call: Call) -> None:
    what, a, b, c = call
    if what == "handled":
        metrics.handled(a, b, c)
    elif what == "api":
        metrics.api_call(a, b, c)
    elif what == "received":
        metrics.received(a, {"update_id": 1, b: {}})
    else:
        metrics.worker_restart(a)


calls = st.one_of(
    st.tuples(
        st.just("handled"),
        st.sampled_from(["ok", "error", "timeout"]),
        st.sampled_from(DURATIONS),
        st.none() | st.sampled_from(DURATIONS),
    ),
    st.tuples(
        st.just("api"),
        st.sampled_from(["sendMessage", "getUpdates", "answerCallbackQuery"]),
        st.sampled_from(["ok", "error_429", "network"]),
        st.sampled_from(DURATIONS),
    ),
)
own_calls = st.one_of(
    st.tuples(st.just("received"), st.sampled_from(["polling", "webhook"]),
              st.sampled_from(["message", "callback_query"]), st.none()),
    st.tuples(st.just("restart"), st.integers(0, SLOTS - 1), st.none(), st.none()),
)  # fmt: skip
slots = st.integers(0, SLOTS - 1)
ops = st.one_of(
    st.tuples(st.just("call"), slots, calls),
    st.tuples(st.just("own"), st.none(), own_calls),
    st.tuples(st.just("report"), slots, st.none()),
    st.tuples(st.just("die"), slots, st.sampled_from(["final", "lost", "late", "silent"])),
    st.tuples(st.just("deliver"), st.none(), st.none()),
    st.tuples(st.just("scrape"), st.none(), st.none()),
)


@dataclass
class Process:
    pid: int
    metrics: Metrics = field(default_factory=lambda: Metrics(build_info=False))
    log: list[Call] = field(default_factory=list)
    delivered: int = 0  # how many of ``log`` the newest delivered snapshot covers


class History:
    """The simulation: the supervisor with its Aggregator, and every worker process so far."""

    def __init__(self) -> None:
        self.supervisor = Metrics()
        self.aggregator = Aggregator(self.supervisor)
        self.own: list[Call] = []
        self.pids = iter(range(1000, 10**6))
        self.current = {slot: Process(next(self.pids)) for slot in range(SLOTS)}
        self.processes = list(self.current.values())
        self.late: list[tuple[int, Process, bytes, int]] = []
        self.last: Samples = {}

    def report(self, slot: int, process: Process, snapshot: bytes, covers: int) -> None:
        self.aggregator.update(slot, process.pid, snapshot)
        process.delivered = max(process.delivered, covers)

    def step(self, op: str, slot: Any, arg: Any) -> None:
        if op == "call":
            play(self.current[slot].metrics, arg)
            self.current[slot].log.append(arg)
        elif op == "own":
            play(self.supervisor, arg)
            self.own.append(arg)
        elif op == "report":
            process = self.current[slot]
            self.report(slot, process, process.metrics.snapshot(), len(process.log))
        elif op == "die":
            self.die(slot, arg)
        elif op == "deliver" and self.late:
            self.report(*self.late.pop(0))
        elif op == "scrape":
            self.check()

    def die(self, slot: int, how: str) -> None:
        """``final``: a last snapshot, then the supervisor sees the death; ``lost``: no last
        snapshot (SIGKILL); ``late``: the last snapshot arrives after the successor started;
        ``silent``: no process_gone, the successor's first snapshot says it."""
        process = self.current[slot]
        if how == "final":
            self.report(slot, process, process.metrics.snapshot(), len(process.log))
        elif how == "late":
            self.late.append((slot, process, process.metrics.snapshot(), len(process.log)))
        if how != "silent":
            self.aggregator.process_gone(slot, process.pid)
        self.current[slot] = Process(next(self.pids))
        self.processes.append(self.current[slot])

    def expected(self) -> Samples:
        reference = Metrics()
        for call in self.own:
            play(reference, call)
        for process in self.processes:
            for call in process.log[: process.delivered]:
                play(reference, call)
        return scrape(reference)

    def check(self) -> None:
        now = scrape(self.supervisor)
        assert now == self.expected()
        for key, before in self.last.items():
            assert now.get(key, -1.0) >= before, key
        self.last = now


@pytest.mark.timeout(120)
@settings(max_examples=200, deadline=None)
@given(st.lists(ops, max_size=60))
def test_counters_are_monotonic_and_sum_what_was_reported(steps: list[Any]) -> None:
    history = History()
    for step in steps:
        history.step(*step)
    while history.late:  # every late snapshot arrives in the end
        history.step("deliver", None, None)
    history.check()


def _worker(*durations: float) -> Metrics:
    metrics = Metrics(build_info=False)
    for duration in durations:
        metrics.handled("ok", duration, 0.0)
        metrics.api_call("sendMessage", "ok", duration)
    return metrics


def handled_ok(metrics: Metrics) -> float:
    return scrape(metrics).get(("tgrunner_updates_handled_total", (("outcome", "ok"),)), 0.0)


@pytest.mark.timeout(10)
def test_a_restarted_slot_keeps_its_dead_process_counts() -> None:
    supervisor = Metrics()
    supervisor.handled("shed")
    aggregator = Aggregator(supervisor)
    first = _worker(0.01, 0.02)
    aggregator.update(0, 101, first.snapshot())
    aggregator.update(1, 201, _worker(0.5).snapshot())
    assert handled_ok(supervisor) == 3
    first.handled("ok", 0.01)  # after its last snapshot: lost when it dies
    aggregator.process_gone(0, 101)
    aggregator.process_gone(0, 101)  # twice is harmless
    assert handled_ok(supervisor) == 3
    aggregator.update(0, 102, _worker(0.03).snapshot())  # the successor starts from 0
    assert handled_ok(supervisor) == 4
    samples = scrape(supervisor)
    assert samples[("tgrunner_updates_handled_total", (("outcome", "shed"),))] == 1
    count = ("tgrunner_api_call_duration_seconds_count", (("method", "sendMessage"),))
    assert samples[count] == 4
    # One family per name: the supervisor's own values and the workers' are merged.
    text = generate_latest(supervisor.registry).decode()
    assert text.count("# TYPE tgrunner_updates_handled_total counter") == 1


@pytest.mark.timeout(10)
def test_an_unreadable_snapshot_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Metrics()
    aggregator = Aggregator(supervisor)
    aggregator.update(0, 1, _worker(0.01).snapshot())
    for bad in (b"", b"{", b'{"v": 99, "values": {}}', b"[1, 2]"):
        aggregator.update(0, 1, bad)
    # Well-formed JSON with ill-formed entries keeps what is well formed.
    aggregator.update(
        0,
        1,
        b'{"v": 1, "values": {"tgrunner_updates_handled_total": [[["ok"], 2], [["x", "y"], 1],'
        b' [["error"], -5], [["error"], true]], "tgrunner_lanes": [[[], 7]], "nope": 1}}',
    )
    samples = scrape(supervisor)
    assert handled_ok(supervisor) == 2
    assert samples[("tgrunner_updates_handled_total", (("outcome", "error"),))] == 0
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 4
