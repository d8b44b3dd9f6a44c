"""The watermark never passes an unfinished update, and reaches the end once all finish."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tgrunner.intake.watermark import Watermark


def test_offset_waits_for_the_oldest_unfinished() -> None:
    wm = Watermark()
    for uid in (10, 11, 14):
        assert wm.received(uid)
    assert wm.offset == 10
    wm.finished(11)
    wm.finished(14)
    assert wm.offset == 10
    wm.finished(10)
    assert wm.offset == 15
    assert wm.in_flight == 0


def test_redelivered_ids_are_refused() -> None:
    wm = Watermark()
    assert wm.received(5)
    assert not wm.received(5)
    assert not wm.received(3)
    assert wm.received(6)
    assert wm.highest == 6


def test_start_offset_skips_confirmed_ids() -> None:
    wm = Watermark(start_offset=100)
    assert not wm.received(99)
    assert wm.received(100)
    assert wm.offset == 100


@given(
    ids=st.lists(st.integers(1, 10_000), min_size=1, max_size=200, unique=True).map(sorted),
    data=st.data(),
)
def test_offset_is_always_safe(ids: list[int], data: st.DataObject) -> None:
    """Property: after any finish order, every id below the offset has finished, and the
    offset is exactly the oldest unfinished id (or one past the last)."""
    wm = Watermark()
    for uid in ids:
        assert wm.received(uid)
    order = data.draw(st.permutations(ids))
    done: set[int] = set()
    for uid in order:
        wm.finished(uid)
        done.add(uid)
        unfinished = [u for u in ids if u not in done]
        expected = unfinished[0] if unfinished else ids[-1] + 1
        assert wm.offset == expected
        assert all(u in done for u in ids if u < wm.offset)
    assert wm.in_flight == 0
