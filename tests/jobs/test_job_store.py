"""JobStore transitions, owner checks and leases, on real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tgrunner.errors import ConfigError
from tgrunner.jobs import MAX_DEATHS, STATES, JobStore

FN = "tests.jobs.work:noop"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.sqlite", clock=clock) as s:
        yield s


@pytest.mark.timeout(10)
def test_enqueue_stores_everything(store: JobStore, clock: Clock) -> None:
    reply = {"chat_id": 5, "message_id": 7, "message_thread_id": 9}
    job_id = store.enqueue(FN, b"[1,2]", retries=2, timeout=30.0, reply_to=reply)
    job = store.get(job_id)
    assert job is not None and len(job_id) == 32
    assert (job.function, job.args, job.state) == (FN, b"[1,2]", "queued")
    assert (job.attempts, job.max_retries, job.timeout) == (0, 2, 30.0)
    assert (job.enqueued_at, job.run_at, job.reply_to, job.reply_sent) == (
        clock.now,
        None,
        reply,
        False,
    )
    assert (job.lease_owner, job.lease_until, job.deaths) == (None, None, 0)
    assert store.counts() == dict.fromkeys(STATES, 0) | {"queued": 1}
    assert store.get("nope") is None


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("function", "kwargs"),
    [
        ("no_colon", {}),
        (FN, {"retries": -1}),
        (FN, {"reply_to": {"message_id": 1}}),
        (FN, {"reply_to": {"chat_id": 1, "text": "x"}}),
    ],
)
def test_enqueue_rejects_bad_input(store: JobStore, function: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        store.enqueue(function, b"[]", **kwargs)


@pytest.mark.timeout(10)
def test_claim_takes_oldest_and_leases(store: JobStore, clock: Clock) -> None:
    first = store.enqueue(FN, b"[1]")
    second = store.enqueue(FN, b"[2]")
    job = store.claim("w1", lease_seconds=3.0)
    assert job is not None and job.id == first
    assert (job.state, job.lease_owner, job.lease_until) == ("started", "w1", clock.now + 3.0)
    job2 = store.claim("w2")
    assert job2 is not None and job2.id == second
    assert store.claim("w3") is None
    assert store.counts()["started"] == 2


@pytest.mark.timeout(10)
def test_finish_records_result_and_reply(store: JobStore, clock: Clock) -> None:
    job_id = store.enqueue(FN, b"[]", reply_to={"chat_id": 1, "message_id": 2})
    assert store.claim("w1") is not None
    clock.now += 1
    assert store.finish(job_id, "w1", b'"ok"', reply_sent=True)
    job = store.get(job_id)
    assert job is not None
    assert (job.state, job.result, job.reply_sent, job.ended_at) == (
        "finished",
        b'"ok"',
        True,
        clock.now,
    )
    assert (job.lease_owner, job.lease_until) == (None, None)
    # A second finish (the same or another owner) changes nothing.
    assert not store.finish(job_id, "w1", b'"again"', reply_sent=False)
    job = store.get(job_id)
    assert job is not None and (job.result, job.reply_sent) == (b'"ok"', True)


@pytest.mark.timeout(10)
def test_only_the_owner_may_act(store: JobStore) -> None:
    job_id = store.enqueue(FN, b"[]")
    assert store.claim("w1") is not None
    assert not store.renew(job_id, "w2")
    assert not store.finish(job_id, "w2", b"1", reply_sent=True)
    assert not store.fail(job_id, "w2", "boom", retry_delay=None)
    assert not store.release(job_id, "w2")
    job = store.get(job_id)
    assert job is not None and (job.state, job.lease_owner, job.attempts) == ("started", "w1", 0)
    assert store.renew(job_id, "w1")
    assert not store.renew("nope", "w1")


@pytest.mark.timeout(10)
def test_fail_retries_then_fails(store: JobStore, clock: Clock) -> None:
    job_id = store.enqueue(FN, b"[]", retries=1)
    assert store.claim("w1") is not None
    assert store.fail(job_id, "w1", "first", retry_delay=10.0)
    job = store.get(job_id)
    assert job is not None
    assert (job.state, job.attempts, job.run_at, job.error) == (
        "scheduled",
        1,
        clock.now + 10.0,
        "first",
    )
    assert job.lease_owner is None and job.ended_at is None
    assert store.claim("w1") is None  # not due yet
    clock.now += 10.0
    job = store.claim("w2")
    assert job is not None and job.id == job_id and job.run_at is None
    assert store.fail(job_id, "w2", "second", retry_delay=10.0, reply_sent=True)
    job = store.get(job_id)
    assert job is not None
    assert (job.state, job.attempts, job.error, job.reply_sent) == ("failed", 2, "second", True)
    assert job.ended_at == clock.now and job.run_at is None
    assert store.claim("w1") is None


@pytest.mark.timeout(10)
def test_fail_without_delay_does_not_retry(store: JobStore) -> None:
    job_id = store.enqueue(FN, b"[]", retries=5)
    assert store.claim("w1") is not None
    assert store.fail(job_id, "w1", "fatal", retry_delay=None)
    job = store.get(job_id)
    assert job is not None and (job.state, job.attempts) == ("failed", 1)


@pytest.mark.timeout(10)
def test_release_queues_at_once(store: JobStore) -> None:
    first = store.enqueue(FN, b"[]")
    store.enqueue(FN, b"[]")
    assert store.claim("w1") is not None
    assert store.release(first, "w1")
    job = store.get(first)
    assert job is not None
    assert (job.state, job.lease_owner, job.deaths, job.attempts) == ("queued", None, 0, 0)
    assert not store.release(first, "w1")
    again = store.claim("w2")
    assert again is not None and again.id == first  # still the oldest


@pytest.mark.timeout(10)
def test_cancel_only_queued_or_scheduled(store: JobStore) -> None:
    queued = store.enqueue(FN, b"[]")
    assert store.cancel(queued)
    assert not store.cancel(queued)
    job = store.get(queued)
    assert job is not None and job.state == "canceled" and job.ended_at is not None
    scheduled = store.enqueue(FN, b"[]", retries=1)
    assert store.claim("w1") is not None
    assert not store.cancel(scheduled)  # started
    assert store.fail(scheduled, "w1", "x", retry_delay=60.0)
    assert store.cancel(scheduled)
    job = store.get(scheduled)
    assert job is not None and (job.state, job.run_at) == ("canceled", None)
    assert not store.cancel("nope")
    assert store.claim("w1") is None


@pytest.mark.timeout(10)
def test_expired_lease_is_taken_with_a_death(store: JobStore, clock: Clock) -> None:
    job_id = store.enqueue(FN, b"[]")
    assert store.claim("w1", lease_seconds=5.0) is not None
    clock.now += 5.0
    assert store.claim("w2") is None  # exactly at lease_until: still w1's
    # Past its time, the lease stays w1's until another claim takes the job.
    clock.now += 1.0
    assert store.renew(job_id, "w1", lease_seconds=5.0)
    clock.now += 6.0
    job = store.claim("w2")
    assert job is not None and (job.id, job.lease_owner, job.deaths) == (job_id, "w2", 1)
    # The old owner lost it: it cannot overwrite w2's run.
    assert not store.renew(job_id, "w1")
    assert not store.finish(job_id, "w1", b"old", reply_sent=True)
    assert not store.fail(job_id, "w1", "old", retry_delay=0.0)
    assert not store.release(job_id, "w1")
    assert store.finish(job_id, "w2", b"new", reply_sent=False)
    job = store.get(job_id)
    assert job is not None and (job.result, job.deaths) == (b"new", 1)


@pytest.mark.timeout(10)
def test_third_death_fails_the_job(store: JobStore, clock: Clock) -> None:
    poison = store.enqueue(FN, b"[]")
    for n in range(MAX_DEATHS):
        job = store.claim(f"w{n}", lease_seconds=1.0)
        assert job is not None and (job.id, job.deaths) == (poison, n)
        clock.now += 2.0
    other = store.enqueue(FN, b"[]")
    job = store.claim("w9")
    assert job is not None and job.id == other  # the poison job is skipped, not taken
    dead = store.get(poison)
    assert dead is not None
    assert (dead.state, dead.deaths, dead.error, dead.lease_owner) == (
        "failed",
        MAX_DEATHS,
        "killed its worker 3 times",
        None,
    )
    assert dead.ended_at == clock.now


@pytest.mark.timeout(10)
def test_jobs_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as s:
        job_id = s.enqueue(FN, b"[]")
        assert s.claim("w1") is not None
    with JobStore(path) as s:
        job = s.get(job_id)
        assert job is not None and (job.state, job.lease_owner) == ("started", "w1")
        assert s.counts()["started"] == 1


@pytest.mark.timeout(10)
def test_close_twice_and_use_after_close(tmp_path: Path) -> None:
    s = JobStore(tmp_path / "jobs.sqlite")
    s.close()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.counts()


@pytest.mark.timeout(10)
def test_wal_mode_and_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path):
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()
    with pytest.raises(ConfigError, match="does not exist"):
        JobStore(tmp_path / "missing" / "jobs.sqlite")
    (tmp_path / "garbage.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="Cannot open the job store"):
        JobStore(tmp_path / "garbage.sqlite")


@pytest.mark.timeout(10)
def test_lease_expires_in_real_time(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as s:
        job_id = s.enqueue(FN, b"[]")
        assert s.claim("dead", lease_seconds=0.2) is not None
        assert s.claim("live", lease_seconds=0.2) is None
        deadline = time.monotonic() + 5.0
        job = None
        while job is None and time.monotonic() < deadline:
            job = s.claim("live", lease_seconds=5.0)
            if job is None:
                time.sleep(0.02)
        assert job is not None and (job.id, job.lease_owner, job.deaths) == (job_id, "live", 1)
        assert s.finish(job_id, "live", b"null", reply_sent=False)


@pytest.mark.timeout(30)
def test_threads_and_connections_share_one_file(tmp_path: Path) -> None:
    """Four threads, two on a shared store and two with stores of their own, drain 200 jobs:
    each is claimed and finished exactly once."""
    path = tmp_path / "jobs.sqlite"
    shared = JobStore(path)
    ids = {shared.enqueue(FN, b"[]") for _ in range(200)}
    finished: list[list[str]] = [[] for _ in range(4)]
    claimed: list[list[str]] = [[] for _ in range(4)]

    def work(n: int) -> None:
        store = shared if n < 2 else JobStore(path)
        while (job := store.claim(f"w{n}", lease_seconds=30.0)) is not None:
            claimed[n].append(job.id)
            if store.finish(job.id, f"w{n}", b"null", reply_sent=False):
                finished[n].append(job.id)
        if store is not shared:
            store.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    all_claimed = [i for c in claimed for i in c]
    all_finished = [i for f in finished for i in f]
    assert sorted(all_claimed) == sorted(all_finished) == sorted(ids)
    assert shared.counts()["finished"] == 200
    shared.close()


@pytest.mark.timeout(10)
def test_deaths_are_logged(store: JobStore, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    store.enqueue(FN, b"[]")
    for n in range(MAX_DEATHS):
        store.claim(f"w{n}", lease_seconds=1.0)
        clock.now += 2.0
    assert store.claim("w9") is None
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "WARNING", "ERROR"]
    assert "death 1 of 3" in messages[0][1] and "killed its worker 3 times" in messages[2][1]


@pytest.mark.timeout(10)
def test_purge_deletes_old_final_jobs(store: JobStore, clock: Clock) -> None:
    old = store.enqueue(FN, b"[]")
    live = store.enqueue(FN, b"[]")
    assert store.cancel(old)
    clock.now += 100.0
    recent = store.enqueue(FN, b"[]")
    assert store.cancel(recent)
    assert store.purge(result_ttl=0.0, failure_ttl=50.0) == 1
    assert store.get(old) is None
    assert store.get(recent) is not None and store.get(live) is not None


@pytest.mark.timeout(10)
def test_enqueue_rejects_bad_timeout(store: JobStore) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        store.enqueue(FN, b"[]", timeout=0)


@pytest.mark.timeout(10)
def test_unreplied_and_mark_reply_sent(store: JobStore, clock: Clock) -> None:
    reply = {"chat_id": 1, "message_id": 2}
    sent = store.enqueue(FN, b"[]", reply_to=reply)
    unsent = store.enqueue(FN, b"[]", reply_to=reply)
    silent = store.enqueue(FN, b"[]")  # no reply_to: nothing to send
    poison = store.enqueue(FN, b"[]", reply_to=reply)
    for job_id in (sent, unsent, silent):
        job = store.claim("w1")
        assert job is not None and job.id == job_id
    assert store.finish(sent, "w1", b"1", reply_sent=True)
    assert store.fail(unsent, "w1", "boom", retry_delay=None)
    assert store.finish(silent, "w1", b"1", reply_sent=False)
    for n in range(MAX_DEATHS):
        assert store.claim(f"d{n}", lease_seconds=1.0) is not None
        clock.now += 2.0
    assert store.claim("w2") is None  # the poison job failed at its third death
    assert [job.id for job in store.unreplied()] == [unsent, poison]
    assert store.mark_reply_sent(poison)
    assert not store.mark_reply_sent(poison)  # one winner
    assert not store.mark_reply_sent(sent)
    assert [job.id for job in store.unreplied(limit=5)] == [unsent]
    queued = store.enqueue(FN, b"[]", reply_to=reply)
    assert not store.mark_reply_sent(queued)  # not ended


@pytest.mark.timeout(10)
def test_purge_keeps_failures_longer_than_results(store: JobStore, clock: Clock) -> None:
    done = store.enqueue(FN, b"[]")
    bad = store.enqueue(FN, b"[]")
    for _ in range(2):
        assert store.claim("w1") is not None
    assert store.finish(done, "w1", b"1", reply_sent=False)
    assert store.fail(bad, "w1", "boom", retry_delay=None)
    clock.now += 600.0
    assert store.purge() == 1  # RQ's TTLs: 500 s for a result, a year for a failure
    assert store.get(done) is None and store.get(bad) is not None


@pytest.mark.timeout(10)
def test_retry_requeues_only_ended_failures(store: JobStore) -> None:
    bad = store.enqueue(FN, b"[]", reply_to={"chat_id": 1, "message_id": 2})
    queued = store.enqueue(FN, b"[]")
    assert store.claim("w1") is not None
    assert store.fail(bad, "w1", "boom", retry_delay=None)
    assert not store.retry(queued)
    assert store.retry(bad)
    job = store.get(bad)
    assert job is not None and (job.state, job.attempts, job.error) == ("queued", 0, None)
    assert [j.id for j in store.listing("queued")] == [queued, bad]
    assert not store.retry(bad)  # queued now: nothing to retry


@pytest.mark.timeout(10)
def test_set_status_message_is_the_owners_and_kept(store: JobStore) -> None:
    reply = {"chat_id": 5, "message_id": 7}
    job_id = store.enqueue(FN, b"[]", reply_to=reply)
    bare = store.enqueue(FN, b"[]")
    assert not store.set_status_message(job_id, "w1", 99)  # not started yet
    assert store.claim("w1") is not None and store.claim("w1") is not None
    assert not store.set_status_message(job_id, "w2", 99)  # not w2's
    assert not store.set_status_message(bare, "w1", 99)  # no reply_to
    assert store.set_status_message(job_id, "w1", 99)
    job = store.get(job_id)
    assert job is not None and job.reply_to == {**reply, "status_message_id": 99}


@pytest.mark.timeout(10)
def test_next_due_is_the_next_job_to_become_runnable(store: JobStore, clock: Clock) -> None:
    assert store.next_due() is None
    a = store.enqueue(FN, b"[]", retries=1)
    assert store.next_due() == 0  # queued: runnable now
    assert store.claim("w1", lease_seconds=5.0) is not None
    assert store.next_due() == clock.now + 5.0  # its lease's end
    b = store.enqueue(FN, b"[]", retries=1)
    assert store.claim("w1", lease_seconds=9.0) is not None
    assert store.fail(b, "w1", "boom", retry_delay=2.0)
    assert store.next_due() == clock.now + 2.0  # b's retry comes first
    assert store.finish(a, "w1", None, reply_sent=True)
    job = store.get(a)
    assert job is not None and job.result is None
    assert store.next_due() == clock.now + 2.0


@pytest.mark.timeout(10)
def test_an_empty_claim_takes_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store, JobStore(path, busy_timeout=0.05) as other:
        store.enqueue(FN, b"[]")
        assert store.claim("w1") is not None
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert other.claim("w2") is None  # nothing runnable: answered without waiting
            with pytest.raises(sqlite3.OperationalError):
                other.renew("x", "w2")  # a write does wait, and times out
        finally:
            db.execute("ROLLBACK")
            db.close()
