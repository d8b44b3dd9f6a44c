"""What a key function may return, and how the scheduler reads it: ``keys_for`` and ``submit``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sched_harness import Harness, settle


async def test_a_string_key_is_one_key() -> None:
    # "c:5" and "c:6" share the characters "c" and ":"; read as strings of keys they would
    # wait for each other, and every chat of the bot would run one at a time.
    h = Harness({1: "c:5", 2: "c:6", 3: "c:5"})
    h.submit(1, 2, 3)
    await settle()
    assert h.started == [1, 2]
    assert h.sched.lanes == 2
    h.go(1, 2, 3)
    await h.wait("done", 1, 2, 3)
    assert h.started == [1, 2, 3]


async def test_a_bytes_key_is_one_key() -> None:
    h = Harness({1: b"ab", 2: b"ba"})
    h.submit(1, 2)
    await settle()
    assert h.started == [1, 2]
    assert h.sched.lanes == 2
    h.go(1, 2)
    assert await h.sched.drain()


async def test_none_means_no_key() -> None:
    h = Harness({1: None, 2: None})
    h.submit(1, 2)
    await settle()
    assert h.started == [1, 2]
    assert h.sched.lanes == 0
    h.go(1, 2)
    assert await h.sched.drain()
    assert h.errors == []


def _gen() -> Iterator[str]:
    yield "a"
    yield "b"
    yield "a"


@pytest.mark.parametrize(
    ("returned", "keys"),
    [
        ("c:5", ("c:5",)),
        (b"c:5", (b"c:5",)),
        ("", ("",)),
        (None, ()),
        ((), ()),
        ([], ()),
        (("c:5",), ("c:5",)),
        (["c:5", "u:7"], ("c:5", "u:7")),
        (("x", "y", "x", "z", "y"), ("x", "y", "z")),
        (_gen, ("a", "b")),
        ({"k": 1}, ("k",)),
        ((5, ("tuple", "key")), (5, ("tuple", "key"))),
    ],
)
async def test_keys_for_normalises_what_the_key_function_returns(
    returned: Any, keys: tuple[Any, ...]
) -> None:
    h = Harness(overrides={"key": lambda _: returned() if callable(returned) else returned})
    assert h.sched.keys_for("item") == keys


@pytest.mark.parametrize(
    ("returned", "match"),
    [(5, "not keys"), ([["a", "list"]], "unhashable"), (("ok", {"a": 1}), "unhashable")],
)
async def test_keys_for_raises_on_keys_it_cannot_use(returned: Any, match: str) -> None:
    h = Harness(overrides={"key": lambda _: returned})
    with pytest.raises(TypeError, match=match):
        h.sched.keys_for("item")
    # submit() turns the same failure into a failed item that never runs.
    h.submit("item")
    assert await h.sched.drain()
    assert h.started == []
    assert [item for item, _ in h.errors] == ["item"]
    assert isinstance(h.errors[0][1], TypeError)
    assert h.done == ["item"]


async def test_submit_takes_precomputed_keys_without_calling_the_key_function() -> None:
    calls: list[Any] = []

    def key(item: Any) -> str:
        calls.append(item)
        return "x"

    h = Harness(overrides={"key": key})
    keys = h.sched.keys_for(1)
    assert calls == [1]
    h.sched.submit(1, keys)
    h.sched.submit(2, keys=("x",))
    h.sched.submit(3, keys=())  # no key: runs at once, beside 1
    assert calls == [1]
    await h.wait("started", 1, 3)
    await settle()
    assert h.started == [1, 3]
    h.go(1, 2, 3)
    await h.wait("done", 1, 2, 3)
    assert h.started == [1, 3, 2]


async def test_precomputed_keys_listing_a_key_twice_do_not_deadlock() -> None:
    h = Harness()
    h.sched.submit(1, keys=("x", "x"))
    h.sched.submit(2, keys=("x",))
    h.go(1, 2)
    await h.wait("done", 1, 2)
    assert h.started == [1, 2]


async def test_precomputed_keys_must_be_a_tuple() -> None:
    h = Harness()
    with pytest.raises(TypeError, match="keys_for"):
        h.sched.submit(1, keys=["x"])  # type: ignore[arg-type]
    assert (h.sched.pending, h.sched.running, h.sched.lanes) == (0, 0, 0)


async def test_unhashable_precomputed_keys_leave_no_trace() -> None:
    h = Harness()
    with pytest.raises(TypeError):
        h.sched.submit(1, keys=("x", ["unhashable"]))
    with pytest.raises(TypeError):
        h.sched.submit(1, keys=(["unhashable"],))
    assert (h.sched.pending, h.sched.running, h.sched.lanes) == (0, 0, 0)
    h.submit(2)
    h.go(2)
    assert await h.sched.drain()
