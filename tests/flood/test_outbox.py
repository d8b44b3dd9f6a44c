"""The outbox under random steps, answers, crashes and control actions (hypothesis): its counts
always equal its rows, an answered chat never changes again, a crash puts exactly the
inflight chats back, nothing is taken unless running, and a broadcast is done exactly when
nothing is left. And its reads: listing, chats per state, purge."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tgrunner.flood.outbox import Claim, Outbox
from tgrunner.flood.records import RECIPIENT_STATES, Result

pytestmark = pytest.mark.timeout(60)

ENDED = ("sent", "blocked", "missing", "failed")


class OutboxMachine(RuleBasedStateMachine):
    """One broadcast of a few chats, driven as a sender (and a shell) would."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.path = self.folder / "broadcasts.sqlite"
        self.outbox = Outbox(self.path)
        self.chats = list(range(100, 112))
        self.claim: Claim | None = self.outbox.create(self.chats, text="hi")
        self.id = self.claim.broadcast_id
        self.state = "running"
        self.model = dict.fromkeys(range(len(self.chats)), "pending")  # seq -> state

    def teardown(self) -> None:
        if self.claim is not None:
            self.claim.release()
        self.outbox.close()
        shutil.rmtree(self.folder)

    def inflight(self) -> list[int]:
        return [seq for seq, state in self.model.items() if state == "inflight"]

    @precondition(lambda self: self.claim is not None)
    @rule(take=st.integers(0, 5))
    def step(self, take: int) -> None:
        step = self.outbox.step(self.id, [], take)
        pending = sorted(seq for seq, s in self.model.items() if s == "pending")
        expected = pending[:take] if self.state == "running" else []
        assert [seq for seq, _ in step.rows] == expected  # in order, only while running
        assert [chat for _, chat in step.rows] == [self.chats[seq] for seq in expected]
        for seq in expected:
            self.model[seq] = "inflight"
        left = any(s in ("pending", "inflight") for s in self.model.values())
        if self.state == "running" and take > 0 and not left:
            self.state = "done"
        assert step.progress.state == self.state

    @precondition(lambda self: self.claim is not None and self.inflight())
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        seqs = data.draw(st.lists(st.sampled_from(self.inflight()), min_size=1, unique=True))
        states = data.draw(st.lists(st.sampled_from((*ENDED, "pending")), min_size=len(seqs),
                                    max_size=len(seqs)))  # fmt: skip
        results = [Result(seq, state, error=state) for seq, state in zip(seqs, states, strict=True)]
        ended = next((seq for seq, s in self.model.items() if s in ENDED), None)
        if ended is not None:  # an answer for a chat already answered changes nothing
            results.append(Result(ended, "pending"))
        self.outbox.step(self.id, results, 0)
        for seq, state in zip(seqs, states, strict=True):
            self.model[seq] = state

    @precondition(lambda self: self.claim is not None)
    @rule()
    def crash(self) -> None:
        assert self.claim is not None
        self.claim.release()
        self.claim = None
        if self.state in ("running", "paused"):
            self.claim = self.outbox.claim(self.id)
            assert self.claim is not None and self.claim.requeued == len(self.inflight())
            for seq in self.inflight():
                self.model[seq] = "pending"
        else:
            assert self.outbox.claim(self.id) is None  # an ended broadcast is not taken

    @rule(action=st.sampled_from(("pause", "resume", "cancel")))
    def control(self, action: str) -> None:
        allowed = {"pause": ("running",), "resume": ("paused",), "cancel": ("running", "paused")}
        applied, state = self.outbox.set_state(self.id, action)
        assert applied == (self.state in allowed[action])
        if applied:
            self.state = {"pause": "paused", "resume": "running", "cancel": "cancelled"}[action]
        assert state == self.state

    @invariant()
    def counts_are_the_rows(self) -> None:
        progress = self.outbox.progress(self.id)
        assert progress is not None and progress.state == self.state
        db = sqlite3.connect(self.path)
        try:
            rows = dict(db.execute("SELECT seq, state FROM recipients WHERE broadcast = ?",
                                   (self.id,)).fetchall())  # fmt: skip
        finally:
            db.close()
        assert rows == self.model
        expected = {s: sum(v == s for v in self.model.values()) for s in RECIPIENT_STATES}
        assert progress.counts() == expected
        assert progress.total == len(self.chats) == sum(expected.values())


TestOutbox = OutboxMachine.TestCase
TestOutbox.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_listing_chats_and_purge(tmp_path: Path) -> None:
    with Outbox(tmp_path / "broadcasts.sqlite") as outbox:
        first = outbox.create([1, 2, 3, "@news"], text="a")
        outbox.step(first.broadcast_id, [], 4)
        answers = [
            Result(0, "sent", message_id=7),
            Result(1, "blocked", error="Forbidden: x"),
            Result(3, "missing", error="chat not found"),
        ]
        outbox.step(first.broadcast_id, answers, 0)
        second = outbox.create([5], text="b")
        assert [p.id for p in outbox.listing()] == [2, 1]
        assert outbox.live() == [1, 2]
        assert outbox.chats(1, "sent") == [(1, 7, None)]
        assert outbox.chats(1, "missing") == [("@news", None, "chat not found")]
        assert outbox.chats(1, "inflight") == [(3, None, None)]
        record = outbox.record(1)
        assert record is not None and (record.text, record.params, record.build) == ("a", {}, None)
        assert outbox.held(1) and outbox.held(2)
        second.release(ended=True)
        assert outbox.set_state(2, "cancel") == (True, "cancelled")
        assert not outbox.held(2) and outbox.claim(2) is None
        assert outbox.purge(older_than=3600) == 0
        time.sleep(0.01)
        assert outbox.purge(older_than=0.001) == 1  # the cancelled one
        assert outbox.progress(2) is None and outbox.live() == [1]
        first.release()
