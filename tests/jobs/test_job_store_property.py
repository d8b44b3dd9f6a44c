"""A hypothesis state machine over JobStore, checked against a model, on a fake clock.

Random claims, renewals, finishes, failures with retries, releases, cancels and lease
expiries (the clock jumps). After every step: the store agrees with the model, no job is held
by two owners with live leases, a final state never changes, and a finished job's reply_sent
was recorded once. At the end, every job is drained to exactly one final state.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tgrunner.jobs import FINAL_STATES, MAX_DEATHS, JobStore

OWNERS = st.sampled_from(["a", "b", "c"])
LEASES = st.sampled_from([1.0, 2.0, 5.0])


@dataclass
class Model:
    """What the store should hold for one job."""

    state: str = "queued"
    attempts: int = 0
    max_retries: int = 0
    run_at: float | None = None
    owner: str | None = None
    until: float | None = None
    deaths: int = 0
    finishes: int = 0
    reply_sent: bool = False
    replies: int = 0  # times the store recorded a reply as sent


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class JobStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="jobstore-"))
        self.clock = Clock()
        self.store = JobStore(self.dir / "jobs.sqlite", clock=self.clock)
        self.ids: list[str] = []
        self.model: dict[str, Model] = {}
        self.final_seen: dict[str, str] = {}

    def teardown(self) -> None:
        try:
            self.drain()
        finally:
            self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------

    def pick(self, index: int) -> str:
        return self.ids[index % len(self.ids)]

    def holds(self, job_id: str, owner: str) -> bool:
        m = self.model[job_id]
        return m.state == "started" and m.owner == owner

    def expected_claim(self) -> str | None:
        """The model's claim: the oldest runnable job, failing those at their last death."""
        now = self.clock.now
        for job_id in self.ids:
            m = self.model[job_id]
            if m.state == "queued" or (
                m.state == "scheduled" and m.run_at is not None and m.run_at <= now
            ):
                return job_id
            if m.state == "started" and m.until is not None and m.until < now:
                m.deaths += 1
                if m.deaths >= MAX_DEATHS:
                    m.state, m.owner, m.until = "failed", None, None
                    continue
                return job_id
        return None

    # -- rules --------------------------------------------------------------------------------

    @initialize(retries=st.lists(st.integers(0, 2), min_size=1, max_size=4))
    def enqueue_some(self, retries: list[int]) -> None:
        for n in retries:
            self.enqueue(n)

    @rule(retries=st.integers(0, 2))
    def enqueue(self, retries: int) -> None:
        job_id = self.store.enqueue("m:f", b"[]", retries=retries)
        self.ids.append(job_id)
        self.model[job_id] = Model(max_retries=retries)

    @rule(owner=OWNERS, lease=LEASES)
    def claim(self, owner: str, lease: float) -> None:
        expected = self.expected_claim()
        job = self.store.claim(owner, lease_seconds=lease)
        assert (job.id if job else None) == expected
        if job is None:
            return
        m = self.model[job.id]
        # No other owner holds a live lease on the job just taken.
        assert m.state != "started" or m.until is None or m.until < self.clock.now
        m.state, m.owner, m.until, m.run_at = "started", owner, self.clock.now + lease, None

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), owner=OWNERS, lease=LEASES)
    def renew(self, index: int, owner: str, lease: float) -> None:
        job_id = self.pick(index)
        ok = self.store.renew(job_id, owner, lease_seconds=lease)
        assert ok == self.holds(job_id, owner)
        if ok:
            self.model[job_id].until = self.clock.now + lease

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), owner=OWNERS, reply_sent=st.booleans())
    def finish(self, index: int, owner: str, reply_sent: bool) -> None:
        job_id = self.pick(index)
        ok = self.store.finish(job_id, owner, b"1", reply_sent=reply_sent)
        assert ok == self.holds(job_id, owner)
        if ok:
            m = self.model[job_id]
            m.state, m.owner, m.until = "finished", None, None
            m.finishes += 1
            m.reply_sent = reply_sent
            m.replies += reply_sent

    @precondition(lambda self: self.ids)
    @rule(
        index=st.integers(0, 50),
        owner=OWNERS,
        delay=st.none() | st.sampled_from([0.0, 1.0, 3.0]),
    )
    def fail(self, index: int, owner: str, delay: float | None) -> None:
        job_id = self.pick(index)
        ok = self.store.fail(job_id, owner, "boom", retry_delay=delay)
        assert ok == self.holds(job_id, owner)
        if ok:
            m = self.model[job_id]
            m.owner, m.until = None, None
            if delay is not None and m.attempts < m.max_retries:
                m.state, m.run_at = "scheduled", self.clock.now + delay
            else:
                m.state = "failed"
            m.attempts += 1

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50), owner=OWNERS)
    def release(self, index: int, owner: str) -> None:
        job_id = self.pick(index)
        ok = self.store.release(job_id, owner)
        assert ok == self.holds(job_id, owner)
        if ok:
            m = self.model[job_id]
            m.state, m.owner, m.until = "queued", None, None

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50))
    def mark_reply_sent(self, index: int) -> None:
        job_id = self.pick(index)
        m = self.model[job_id]
        ok = self.store.mark_reply_sent(job_id)
        assert ok == (m.state in ("finished", "failed") and not m.reply_sent)
        if ok:
            m.reply_sent = True
            m.replies += 1

    @precondition(lambda self: self.ids)
    @rule(index=st.integers(0, 50))
    def cancel(self, index: int) -> None:
        job_id = self.pick(index)
        m = self.model[job_id]
        ok = self.store.cancel(job_id)
        assert ok == (m.state in ("queued", "scheduled"))
        if ok:
            m.state, m.run_at = "canceled", None

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 6.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @precondition(lambda self: any(m.state == "started" for m in self.model.values()))
    @rule(owner=OWNERS, lease=LEASES)
    def worker_dies(self, owner: str, lease: float) -> None:
        """Every holder stops renewing: once their leases run out, another worker claims."""
        self.clock.now += 6.0
        self.claim(owner, lease)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        for job_id in self.ids:
            job = self.store.get(job_id)
            m = self.model[job_id]
            assert job is not None
            assert (job.state, job.lease_owner, job.lease_until) == (m.state, m.owner, m.until)
            assert (job.attempts, job.deaths, job.run_at) == (m.attempts, m.deaths, m.run_at)
            if job.state in FINAL_STATES:
                assert self.final_seen.setdefault(job_id, job.state) == job.state
            assert m.finishes <= 1 and m.replies <= 1
            if job.state == "finished":
                assert m.finishes == 1
            assert job.reply_sent == m.reply_sent
        counts = self.store.counts()
        assert sum(counts.values()) == len(self.ids)

    def drain(self) -> None:
        """Jump past every lease and retry, and finish whatever is left."""
        for _ in range(10 * len(self.ids) + 10):
            self.clock.now += 100.0
            job = self.store.claim("drain")
            if job is None:
                break
            assert self.store.finish(job.id, "drain", b"1", reply_sent=True)
        counts = self.store.counts()
        assert counts["queued"] == counts["scheduled"] == counts["started"] == 0
        for job_id in self.ids:
            job = self.store.get(job_id)
            assert job is not None and job.state in FINAL_STATES
            # A job final before the drain stayed in that state.
            assert self.final_seen.get(job_id, job.state) == job.state


TestJobStoreMachine = JobStoreMachine.TestCase
TestJobStoreMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestJobStoreMachine = pytest.mark.timeout(240)(TestJobStoreMachine)
