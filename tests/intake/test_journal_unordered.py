"""The journal behind an unordered source (a webhook): ids of different chats arrive in any
order and Telegram resends an update whose answer it missed. Each update is taken once while
it is here or recently finished, replays in arrival order, and resends are dropped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgrunner.errors import ConfigError
from tgrunner.intake.journal import Journal
from tgrunner.intake.strict import StrictIntake


def updates(*ids: int) -> list[dict[str, object]]:
    return [{"update_id": i, "message": {"text": str(i), "chat": {"id": i % 3}}} for i in ids]


def ids(rows: list[dict[str, object]]) -> list[object]:
    return [u["update_id"] for u in rows]


@pytest.mark.timeout(30)
async def test_lower_ids_after_higher_ones_are_taken_and_replay_in_arrival_order(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path / "j.db", bot_id=1)
    assert ids(await j.put(updates(50, 51), ordered=False)) == [50, 51]
    assert ids(await j.put(updates(40, 52, 41), ordered=False)) == [40, 52, 41]
    assert j.highest == 52  # a later switch to polling starts past every id seen
    j.close_now()
    again = Journal(tmp_path / "j.db", bot_id=1)
    assert ids(again.unfinished()) == [50, 51, 40, 52, 41]
    again.close_now()


@pytest.mark.timeout(30)
async def test_resends_of_unfinished_updates_are_dropped_across_a_restart(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", bot_id=1)
    await j.put(updates(7, 8), ordered=False)
    assert await j.put(updates(8, 7, 7), ordered=False) == []
    j.close_now()  # a crash before the answers reached Telegram: it resends both
    again = Journal(tmp_path / "j.db", bot_id=1)
    assert ids(await again.put(updates(8, 9, 7), ordered=False)) == [9]
    again.close_now()


@pytest.mark.timeout(30)
async def test_a_resend_of_a_finished_update_is_dropped(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", bot_id=1)
    await j.put(updates(3, 4), ordered=False)
    j.finished(3)
    j.set_aside(4, attempts=3, reason="was being handled at 3 deaths of its worker process")
    await j.flush()
    assert await j.put(updates(3, 4), ordered=False) == []
    assert j.pending == 0
    await j.close()


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from("put finish reopen"), st.lists(
    st.integers(1, 30), max_size=6)), max_size=25))  # fmt: skip
def test_an_update_is_taken_once_while_it_is_here_or_recently_finished(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, list[int]]]
) -> None:
    """Property: against a model (ids here, ids finished since the journal was opened), put
    returns exactly the unseen ids, once each, and a reopened journal replays what is here in
    arrival order."""

    async def scenario() -> None:
        path = tmp_path_factory.mktemp("j") / "j.db"
        j = Journal(path, bot_id=7)
        here: list[int] = []
        finished: set[int] = set()
        for action, batch in steps:
            if action == "put":
                want: list[int] = []
                for uid in batch:
                    if uid not in here and uid not in finished and uid not in want:
                        want.append(uid)
                assert ids(await j.put(updates(*batch), ordered=False)) == want
                here += want
            elif action == "finish":
                for uid in batch:
                    if uid in here:
                        here.remove(uid)
                        finished.add(uid)
                        j.finished(uid)
            else:
                await j.flush()
                j.close_now()
                j = Journal(path, bot_id=7)
                finished.clear()  # remembered in memory only
                assert ids(j.unfinished()) == here
        await j.flush()
        j.close_now()

    start = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - start < 30


@pytest.mark.timeout(10)
async def test_strict_offsets_refuse_an_unordered_source() -> None:
    with pytest.raises(ConfigError, match="only the journal can answer them safely"):
        await StrictIntake().put(updates(1), ordered=False)


@pytest.mark.timeout(30)
async def test_a_resend_of_a_quarantined_update_is_dropped(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", bot_id=1)
    await j.put(updates(4, 5), ordered=False)
    j.set_aside(4, attempts=3, reason="was being handled at 3 deaths of its worker process")
    await j.flush()
    j.close_now()
    again = Journal(tmp_path / "j.db", bot_id=1)  # its memory of finished ids is gone
    assert ids(await again.put(updates(4, 5, 6), ordered=False)) == [6]
    again.close_now()
