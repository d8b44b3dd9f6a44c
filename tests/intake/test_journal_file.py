"""The intake journal on real SQLite files: durable before confirmation, replayed in arrival
order, bound to its bot and its process, attempts counted before a handler runs, repeat
offenders quarantined, finish marks on disk within 100 ms, and ``full`` sync off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgrunner.errors import ConfigError
from tgrunner.intake.journal import FLUSH_DELAY, MAX_ATTEMPTS, Journal


def updates(*ids: int) -> list[dict[str, object]]:
    return [{"update_id": i, "message": {"text": str(i), "chat": {"id": i % 3}}} for i in ids]


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [u["update_id"] for u in rows]


async def test_put_is_durable_and_unfinished_replays_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, bot_id=1)
    assert await j.put(updates(5, 6, 7)) == updates(5, 6, 7)
    assert await j.put(updates(6, 7, 8)) == updates(8)  # already journaled ones are refused
    assert j.offset == 9
    j.finished(6)
    await j.flush()
    j.close_now()  # as after a crash: nothing more is written
    again = Journal(path, bot_id=1)
    assert ids(again.unfinished()) == [5, 7, 8]
    assert again.highest == 8 and again.get(7) == updates(7)[0] and again.get(6) is None
    await again.close()
    await again.close()  # twice is fine


async def test_restarted_ids_replay_in_arrival_order(tmp_path: Path) -> None:
    """Telegram restarts ids lower after a quiet week: they are new, and replay after the old."""
    j = Journal(tmp_path / "j.db", bot_id=1)
    await j.put(updates(900, 901))
    assert await j.put(updates(10)) == []  # below highest: taken for a repeat...
    j.restart_ids()  # ...until the source says the ids restarted
    assert await j.put(updates(10, 11)) == updates(10, 11)
    j.close_now()
    again = Journal(tmp_path / "j.db", bot_id=1)
    assert ids(again.unfinished()) == [900, 901, 10, 11]
    again.close_now()


async def test_another_bots_journal_is_refused(tmp_path: Path) -> None:
    await Journal(tmp_path / "j.db", bot_id=1).close()
    with pytest.raises(ConfigError, match="belongs to bot 1"):
        Journal(tmp_path / "j.db", bot_id=2)


async def test_a_second_process_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j.db", bot_id=1)
    await first.put(updates(1))
    with pytest.raises(ConfigError, match=r"Another process \(pid \d+\) is running this bot"):
        Journal(tmp_path / "j.db", bot_id=1)
    await first.close()
    Journal(tmp_path / "j.db", bot_id=1).close_now()  # free again once closed


def test_missing_folder_is_never_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Journal(tmp_path / "nope" / "j.db", bot_id=1)
    assert not (tmp_path / "nope").exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="does not exist"):
        Journal(blocker / "j.db", bot_id=1)


def test_bad_sync_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'normal' or 'full'"):
        Journal(tmp_path / "j.db", bot_id=1, sync="sometimes")


async def test_finish_marks_reach_disk_within_100_ms_without_more_traffic(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, bot_id=1)
    await j.put(updates(1, 2, 3))
    j.finished(1)
    j.finished(3)
    # Read on another connection, as a restarted process would.
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT count(*) FROM intake").fetchone()[0] == 3
    await asyncio.sleep(FLUSH_DELAY * 2)
    assert [r[0] for r in reader.execute("SELECT update_id FROM intake")] == [2]
    reader.close()
    await j.close()


async def test_an_attempt_is_on_disk_before_the_handler_runs(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, bot_id=1)
    await j.put(updates(1))
    seen: list[int] = []

    async def handler() -> None:
        # What a process killed at this very moment leaves on disk.
        db = sqlite3.connect(path)
        seen.append(db.execute("SELECT attempts FROM intake").fetchone()[0])
        db.close()

    j.started(1)
    await asyncio.get_running_loop().create_task(handler())
    assert seen == [1]
    await j.close()


async def test_an_update_started_three_times_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    for run in range(MAX_ATTEMPTS):
        j = Journal(path, bot_id=1)
        if run == 0:
            await j.put(updates(1, 2))
        assert ids(j.unfinished()) == [1, 2]
        j.started(1)  # update 1 kills the process each time; 2 never starts
        await j.flush()
        j.close_now()
    j = Journal(path, bot_id=1)
    assert j.quarantined_now == [1]
    assert ids(j.unfinished()) == [2]
    [q] = j.quarantine()
    assert (q.update_id, q.attempts, q.update) == (1, MAX_ATTEMPTS, updates(1)[0])
    assert j.retry([1]) == 1
    assert ids(j.unfinished()) == [2, 1] and j.quarantine() == []
    j.close_now()


@pytest.mark.parametrize("sync", ["normal", "full"])
async def test_set_aside_quarantines_one_update_now(
    tmp_path: Path, sync: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, bot_id=1, sync=sync)
    await j.put(updates(1, 2))
    j.started(1)
    j.set_aside(1, attempts=3, reason="was being handled at 3 deaths of its worker process")
    await j.flush()
    assert ids(j.unfinished()) == [2]
    [q] = j.quarantine()
    assert (q.update_id, q.attempts, q.update) == (1, 3, updates(1)[0])
    await j.close()
    assert "update 1 was being handled at 3 deaths of its worker process; quarantined" in (
        caplog.text
    )
    j = Journal(path, bot_id=1)  # it stays set aside, and is not replayed
    assert ids(j.unfinished()) == [2] and [q.update_id for q in j.quarantine()] == [1]
    j.close_now()


async def test_drop_forgets_and_uncount_gives_back_attempts(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, bot_id=1)
    await j.put(updates(1, 2))
    for _ in range(MAX_ATTEMPTS - 1):
        j.started(1)
        j.started(2)
    j.uncount([2])  # a clean stop cancelled 2: that start did not crash anything
    j.started(1)
    await j.flush()
    j.close_now()
    j = Journal(path, bot_id=1)
    assert j.quarantined_now == [1] and ids(j.unfinished()) == [2]
    assert j.drop() == 1 and j.quarantine() == [] and j.drop() == 0
    j.close_now()


async def test_full_sync_writes_off_the_event_loop(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", bot_id=1, sync="full")
    threads: set[int] = set()
    # Observe which thread runs each statement (SQLite's own trace hook; nothing replaced).
    j._db.set_trace_callback(lambda _sql: threads.add(threading.get_ident()))
    await j.put(updates(1, 2))
    assert threads and threading.get_ident() not in threads
    j.finished(1)
    await j.close()
    again = Journal(tmp_path / "j.db", bot_id=1)
    assert ids(again.unfinished()) == [2]
    again.close_now()


async def test_a_version_one_journal_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE intake (update_id INTEGER PRIMARY KEY, body BLOB NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('bot_id', 1), ('highest', 8);"
    )
    db.execute("INSERT INTO intake VALUES (8, ?), (7, ?)", (b'{"update_id":8}', b'{"update_id":7}'))
    db.commit()
    db.close()
    j = Journal(path, bot_id=1)
    assert ids(j.unfinished()) == [7, 8] and j.highest == 8
    j.close_now()


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(1, 400), max_size=20), max_size=8),
    restart_at=st.integers(0, 8),
    data=st.data(),
)
def test_unfinished_is_exactly_put_minus_finished(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[int]],
    restart_at: int,
    data: st.DataObject,
) -> None:
    """Property: after any batches (ids restarting lower at one point) and finish marks
    between them (the newest row included, so rowids are reused), a reopened journal holds
    exactly the journaled, unfinished updates, in arrival order."""

    async def scenario() -> None:
        path = tmp_path_factory.mktemp("j") / "j.db"
        j = Journal(path, bot_id=7)
        order: list[int] = []
        done: set[int] = set()
        for n, batch in enumerate(batches):
            if n == restart_at:
                j.restart_ids()
            fresh = await j.put(updates(*sorted(set(batch) - set(order))))
            order += [u["update_id"] for u in fresh]  # type: ignore[misc]
            left = [u for u in order if u not in done]
            finish = data.draw(st.sets(st.sampled_from(left))) if left else set()
            for uid in finish:
                j.finished(uid)
            done |= finish
            await j.flush()
        j.close_now()
        reopened = Journal(path, bot_id=7)
        assert ids(reopened.unfinished()) == [u for u in order if u not in done]
        reopened.close_now()

    start = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - start < 30
