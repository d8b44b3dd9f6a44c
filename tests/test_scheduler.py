"""The scheduler's contract, one semantic per test, synchronised on events (never on sleeps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Sequence
from typing import Any

import pytest

from tgrunner.errors import ConfigError
from tgrunner.scheduler import Scheduler, SchedulerFull, SchedulerOptions


class Boom(Exception):
    """The failure a test handler raises on purpose."""


async def settle() -> None:
    # Let callbacks and freshly started tasks run; used only before asserting that
    # something did NOT happen.
    for _ in range(10):
        await asyncio.sleep(0)


class Harness:
    """A scheduler whose handlers wait on per-item gates, with every hook recorded.

    - ``keys``: item -> its keys (missing items have none).
    - ``failing``: items whose handler raises :class:`Boom` once let go.
    - ``swallow``: items whose handler swallows cancellation and waits for ``free(item)``.
    - ``hooks``: False to leave the error, timeout and stuck hooks unset.
    - ``overrides``: other keyword arguments for :class:`Scheduler` (a hook, the key).
    """

    def __init__(
        self,
        keys: dict[Any, Sequence[Hashable]] | None = None,
        *,
        failing: set[Any] | frozenset[Any] = frozenset(),
        swallow: set[Any] | frozenset[Any] = frozenset(),
        hooks: bool = True,
        overrides: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.keys = keys or {}
        self.failing = failing
        self.swallow = swallow
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.cancelled: list[Any] = []
        self.done: list[Any] = []
        self.errors: list[tuple[Any, BaseException]] = []
        self.timeouts: list[Any] = []
        self.stuck: list[Any] = []
        self._events: dict[tuple[str, Any], asyncio.Event] = {}
        kwargs: dict[str, Any] = {
            "key": lambda item: self.keys.get(item, ()),
            "on_done": self._done,
            "on_error": self._error if hooks else None,
            "on_timeout": self._timeout if hooks else None,
            "on_stuck": self._stuck if hooks else None,
            **(overrides or {}),
        }
        self.sched: Scheduler[Any] = Scheduler(
            self.handle, options=SchedulerOptions(**options), **kwargs
        )

    def event(self, what: str, item: Any) -> asyncio.Event:
        return self._events.setdefault((what, item), asyncio.Event())

    async def wait(self, what: str, *items: Any) -> None:
        for item in items:
            await self.event(what, item).wait()

    def go(self, *items: Any) -> None:
        for item in items:
            self.event("go", item).set()

    def free(self, *items: Any) -> None:
        for item in items:
            self.event("free", item).set()

    def submit(self, *items: Any) -> None:
        for item in items:
            self.sched.submit(item)

    async def handle(self, item: Any) -> None:
        self.started.append(item)
        self.event("started", item).set()
        try:
            await self.event("go", item).wait()
        except asyncio.CancelledError:
            self.cancelled.append(item)
            self.event("cancelled", item).set()
            if item in self.swallow:
                await self.event("free", item).wait()
                return
            raise
        if item in self.failing:
            raise Boom(item)
        self.finished.append(item)

    def _done(self, item: Any) -> None:
        self.done.append(item)
        self.event("done", item).set()

    def _error(self, item: Any, exc: BaseException) -> None:
        self.errors.append((item, exc))

    def _timeout(self, item: Any) -> None:
        self.timeouts.append(item)

    def _stuck(self, item: Any) -> None:
        self.stuck.append(item)


# -- order ------------------------------------------------------------------------------------


async def test_same_key_runs_one_at_a_time_in_submit_order() -> None:
    h = Harness({1: ["x"], 2: ["x"], 3: ["x"]})
    h.submit(1, 2, 3)
    await h.wait("started", 1)
    await settle()
    assert h.started == [1]
    h.go(3, 2)  # let go out of order: the lane still decides
    await settle()
    assert h.started == [1]
    h.go(1)
    await h.wait("done", 1, 2, 3)
    assert h.started == [1, 2, 3]
    assert h.done == [1, 2, 3]


async def test_multi_key_item_waits_for_every_key_and_is_waited_for() -> None:
    # A on {x}, B on {x, y}, C on {y}: C waits for B although y is free when C is submitted.
    h = Harness({"A": ["x"], "B": ["x", "y"], "C": ["y"]})
    h.submit("A", "B", "C")
    await h.wait("started", "A")
    await settle()
    assert h.started == ["A"]
    h.go("C")
    await settle()
    assert h.started == ["A"]
    h.go("A")
    await h.wait("started", "B")
    await settle()
    assert h.started == ["A", "B"]
    h.go("B")
    await h.wait("done", "C")
    assert h.started == ["A", "B", "C"]
    assert h.sched.lanes == 0


async def test_items_sharing_no_key_run_concurrently() -> None:
    h = Harness({1: ["x"], 2: ["y"], 3: ["x", "z"]})
    h.submit(1, 2, 3)
    await h.wait("started", 1, 2)
    await settle()
    assert sorted(h.started) == [1, 2]
    assert h.sched.running == 2
    assert h.sched.pending == 1
    h.go(1, 2, 3)
    await h.wait("done", 1, 2, 3)


async def test_items_without_keys_run_freely() -> None:
    h = Harness({1: ["x"], 2: ["x"]})
    h.submit(1, 2, "free-a", "free-b")
    await h.wait("started", 1, "free-a", "free-b")
    assert 2 not in h.started
    h.go("free-a", "free-b")
    await h.wait("done", "free-a", "free-b")
    assert h.sched.lanes == 1  # x still held by 1, waited for by 2
    h.go(1, 2)
    await h.wait("done", 1, 2)
    assert h.sched.lanes == 0


async def test_a_key_listed_twice_does_not_deadlock() -> None:
    h = Harness({1: ["x", "x"], 2: ("x",)})
    h.submit(1, 2)
    h.go(1, 2)
    await h.wait("done", 1, 2)
    assert h.started == [1, 2]


async def test_default_key_is_the_chat() -> None:
    started: list[int] = []
    gate = asyncio.Event()

    async def handler(update: dict[str, Any]) -> None:
        started.append(update["update_id"])
        await gate.wait()

    sched: Scheduler[dict[str, Any]] = Scheduler(handler)
    for uid, chat in [(1, 5), (2, 5), (3, 6)]:
        sched.submit({"update_id": uid, "message": {"message_id": uid, "chat": {"id": chat}}})
    await settle()
    assert started == [1, 3]
    gate.set()
    assert await sched.drain()
    assert started == [1, 3, 2]


# -- the global limit -------------------------------------------------------------------------


async def test_never_more_than_concurrency_run() -> None:
    h = Harness(concurrency=2, max_pending=10)
    h.submit("a", "b", "c", "d")
    await h.wait("started", "a", "b")
    await settle()
    assert h.started == ["a", "b"]
    assert (h.sched.running, h.sched.pending) == (2, 2)
    h.go("b")
    await h.wait("started", "c")
    await settle()
    assert h.started == ["a", "b", "c"]
    h.go("a", "c", "d")
    await h.wait("done", "d")
    assert h.sched.running == 0


async def test_ready_items_start_in_the_order_they_became_ready() -> None:
    # 1 holds x and the only slot; 2 waits for x; 3 is ready (y is free) before 2 is.
    h = Harness({1: ["x"], 2: ["x"], 3: ["y"]}, concurrency=1, max_pending=10)
    h.submit(1, 2, 3)
    await h.wait("started", 1)
    h.go(1)
    await h.wait("started", 3)
    await settle()
    assert h.started == [1, 3]
    h.go(3, 2)
    await h.wait("done", 2)
    assert h.started == [1, 3, 2]


# -- bounds and backpressure ------------------------------------------------------------------


async def test_capacity_counts_queued_and_running_items() -> None:
    h = Harness({i: ["x"] for i in range(3)}, concurrency=2, max_pending=5)
    assert h.sched.capacity() == 5
    h.submit(0, 1, 2, "free")
    assert h.sched.capacity() == 1
    h.submit("free2")
    assert h.sched.capacity() == 0
    with pytest.raises(SchedulerFull, match="wait_capacity"):
        h.sched.submit("one too many")
    h.go(0, 1, 2, "free", "free2")
    assert await h.sched.drain()
    assert h.sched.capacity() == 5


async def test_per_key_limit_holds_back_intake() -> None:
    h = Harness({i: ["hot"] for i in range(3)}, max_pending_per_key=2)
    h.submit(0, 1)
    assert h.sched.capacity() == 0  # whatever the next item's key: the source must slow down
    with pytest.raises(SchedulerFull):
        h.sched.submit(2)
    waiter = asyncio.ensure_future(h.sched.wait_capacity(1))
    await settle()
    assert not waiter.done()
    h.go(0)
    await waiter
    assert h.sched.capacity() == 1
    h.submit(2)
    h.go(1, 2)
    assert await h.sched.drain()


async def test_wait_capacity_waits_for_n() -> None:
    h = Harness(concurrency=3, max_pending=3)
    h.submit("a", "b", "c")
    waiter = asyncio.ensure_future(h.sched.wait_capacity(2))
    h.go("a")
    await h.wait("done", "a")
    await settle()
    assert not waiter.done()
    h.go("b")
    await waiter
    assert h.sched.capacity() >= 2
    h.go("c")
    assert await h.sched.drain()


async def test_wait_capacity_returns_at_once_with_room_and_refuses_the_impossible() -> None:
    h = Harness(max_pending=10, max_pending_per_key=4, concurrency=2)
    await h.sched.wait_capacity(4)
    with pytest.raises(ValueError, match="never"):
        await h.sched.wait_capacity(5)


# -- time limits ------------------------------------------------------------------------------


async def test_timeout_cancels_calls_hook_and_releases_the_key() -> None:
    h = Harness({1: ["x"], 2: ["x"]}, handler_timeout=0.02)
    h.submit(1, 2)
    await h.wait("started", 2)  # 1 hangs until its time limit cancels it
    assert h.cancelled == [1]
    assert h.timeouts == [1]
    assert h.errors == []
    h.go(2)
    await h.wait("done", 2)
    assert h.done == [1, 2]
    assert h.sched.lanes == 0


async def test_time_limit_starts_when_the_handler_starts() -> None:
    loop = asyncio.get_running_loop()
    began: dict[int, float] = {}
    cancelled_at: dict[int, float] = {}
    limit = 0.05

    async def handler(item: int) -> None:
        began[item] = loop.time()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled_at[item] = loop.time()
            raise

    sched: Scheduler[int] = Scheduler(
        handler,
        options=SchedulerOptions(handler_timeout=limit),
        key=lambda _: ("same",),
        on_timeout=lambda _: None,
    )
    sched.submit(1)
    sched.submit(2)  # queued for a whole time limit before it starts
    assert await sched.drain()
    assert began[2] >= cancelled_at[1]
    # A limit counted from submission would have cancelled 2 as soon as it started.
    assert cancelled_at[2] - began[2] >= limit * 0.9


async def test_handler_swallowing_cancellation_is_reported_and_releases_its_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness({1: ["x"], 2: ["x"]}, swallow={1}, handler_timeout=0.01, cancel_grace=0.05)
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        h.submit(1, 2)
        await h.wait("started", 2)  # only after the grace: 1 never stopped
    assert h.cancelled == [1]
    assert h.stuck == [1]
    assert h.timeouts == [1]
    assert h.done == [1]
    assert any("handler on 1 ignored cancellation" in r.getMessage() for r in caplog.records)
    # The detached handler still holds a slot: the global limit stays a true bound.
    assert h.sched.running == 2
    assert h.sched.stuck == 1
    h.go(2)
    await h.wait("done", 2)
    assert h.sched.lanes == 0
    assert h.sched.running == 1
    assert not await h.sched.drain(timeout=0.01)
    h.free(1)
    assert await h.sched.drain()
    assert (h.sched.running, h.sched.stuck, h.done) == (0, 0, [1, 2])


async def test_stuck_warning_names_the_update(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def handler(update: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()

    reported = asyncio.Event()
    sched: Scheduler[dict[str, Any]] = Scheduler(
        handler,
        options=SchedulerOptions(handler_timeout=0.01, cancel_grace=0.02),
        on_stuck=lambda _: reported.set(),
    )
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        sched.submit({"update_id": 42, "message": {"chat": {"id": 1}}})
        await reported.wait()
    assert any("update 42" in r.getMessage() for r in caplog.records)
    release.set()
    assert await sched.drain()


async def test_stuck_handlers_keep_their_slot() -> None:
    h = Harness(
        swallow={"z"}, handler_timeout=0.01, cancel_grace=0.02, concurrency=1, max_pending=5
    )
    h.submit("z", "next")
    await h.wait("done", "z")  # reported stuck, keys released...
    await settle()
    assert h.started == ["z"]  # ...but "next" needs the one slot the zombie holds
    h.free("z")
    await h.wait("started", "next")
    h.go("next")
    assert await h.sched.drain()


async def test_handler_finishing_after_its_cancel_within_grace_is_a_timeout() -> None:
    h = Harness({1: ["x"]}, swallow={1}, handler_timeout=0.01, cancel_grace=30)
    h.submit(1)
    await h.wait("cancelled", 1)
    h.free(1)
    await h.wait("done", 1)
    assert h.timeouts == [1]
    assert h.stuck == []
    assert h.sched.running == 0


# -- failures ---------------------------------------------------------------------------------


async def test_error_goes_to_the_hook_and_never_blocks_the_key() -> None:
    h = Harness({1: ["x"], 2: ["x"]}, failing={1})
    h.submit(1, 2)
    h.go(1, 2)
    await h.wait("done", 1, 2)
    [(item, exc)] = h.errors
    assert item == 1
    assert isinstance(exc, Boom)
    assert h.finished == [2]
    assert h.done == [1, 2]


async def test_error_without_hook_is_logged_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness({1: ["x"]}, failing={1}, hooks=False)
    with caplog.at_level(logging.ERROR, logger="tgrunner.scheduler"):
        h.submit(1)
        h.go(1)
        await h.wait("done", 1)
    [record] = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[0] is Boom


async def test_timeout_without_hook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness({1: ["x"]}, hooks=False, handler_timeout=0.01)
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        h.submit(1)
        await h.wait("done", 1)
    assert any("time limit" in r.getMessage() for r in caplog.records)


async def test_failing_hooks_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def bad_async_hook(item: Any, exc: BaseException | None = None) -> None:
        raise RuntimeError("async hook broke")

    def bad_hook(item: Any) -> None:
        raise RuntimeError("sync hook broke")

    done: list[Any] = []

    def bad_done(item: Any) -> None:
        done.append(item)
        h.event("done", item).set()
        raise RuntimeError("on_done broke")

    h = Harness(
        {i: ["x"] for i in range(4)},
        failing={0, 2},
        handler_timeout=0.05,
        overrides={"on_error": bad_async_hook, "on_timeout": bad_hook, "on_done": bad_done},
    )
    with caplog.at_level(logging.ERROR, logger="tgrunner.scheduler"):
        h.submit(0, 1, 2, 3)
        h.go(0, 2, 3)  # 1 hangs until its time limit
        await h.wait("done", 0, 1, 2, 3)
    assert done == [0, 1, 2, 3]
    assert h.started == [0, 1, 2, 3]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("on_error hook failed" in m for m in messages) == 2
    assert sum("on_timeout hook failed" in m for m in messages) == 1
    assert sum("on_done hook failed" in m for m in messages) == 4
    assert h.sched.lanes == 0


async def test_async_hook_runs_in_the_slot_before_the_key_is_released() -> None:
    hook_gate = asyncio.Event()
    in_hook = asyncio.Event()

    async def on_error(item: Any, exc: BaseException) -> None:
        in_hook.set()
        await hook_gate.wait()

    h = Harness({1: ["x"], 2: ["x"]}, failing={1}, overrides={"on_error": on_error})
    h.submit(1, 2)
    h.go(1, 2)
    await in_hook.wait()
    await settle()
    assert h.started == [1]
    assert h.done == []
    assert h.sched.running == 1
    hook_gate.set()
    await h.wait("done", 1, 2)
    assert h.done == [1, 2]


async def test_key_function_failure_fails_the_item_only() -> None:
    def key(item: Any) -> Sequence[Hashable]:
        if item == "bad":
            raise Boom("no key")
        return ("x",)

    h = Harness(overrides={"key": key})
    h.submit("a", "bad", "b")
    h.go("a", "b", "bad")
    assert await h.sched.drain()
    assert h.started == ["a", "b"]  # "bad" never runs: without its keys order would break
    assert [item for item, _ in h.errors] == ["bad"]
    assert isinstance(h.errors[0][1], Boom)
    assert sorted(h.done) == ["a", "b", "bad"]


async def test_unhashable_key_fails_the_item_only() -> None:
    h = Harness({"bad": [["a", "list"]]})
    h.submit("bad", "ok")
    h.go("ok")
    assert await h.sched.drain()
    assert h.started == ["ok"]
    assert isinstance(h.errors[0][1], TypeError)


async def test_handler_returning_no_awaitable_is_an_error() -> None:
    errors: list[BaseException] = []
    done: list[int] = []
    sched: Scheduler[int] = Scheduler(
        lambda item: None,  # type: ignore[arg-type, return-value]
        key=lambda _: (),
        on_error=lambda _, exc: errors.append(exc),
        on_done=done.append,
    )
    sched.submit(1)
    assert await sched.drain()
    assert done == [1]
    assert isinstance(errors[0], TypeError)
    assert "not an awaitable" in str(errors[0])


async def test_handler_returning_a_future_works() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = []

    def handler(item: int) -> asyncio.Future[None]:
        fut = loop.create_future()
        futures.append(fut)
        return fut

    done: list[int] = []
    sched: Scheduler[int] = Scheduler(handler, key=lambda _: ("k",), on_done=done.append)
    sched.submit(1)
    sched.submit(2)
    await settle()
    assert len(futures) == 1
    futures[0].set_result(None)
    await settle()
    futures[1].set_result(None)
    assert await sched.drain()
    assert done == [1, 2]


async def test_handler_cancelled_by_itself_is_an_error_not_a_hang() -> None:
    async def handler(item: int) -> None:
        raise asyncio.CancelledError

    errors: list[BaseException] = []
    done: list[int] = []
    sched: Scheduler[int] = Scheduler(
        handler, key=lambda _: ("k",), on_error=lambda _, e: errors.append(e), on_done=done.append
    )
    sched.submit(1)
    sched.submit(2)
    assert await sched.drain()
    assert done == [1, 2]
    assert all(isinstance(e, asyncio.CancelledError) for e in errors)


# -- drain, cancel_all, lanes ------------------------------------------------------------------


async def test_drain() -> None:
    h = Harness({1: ["x"], 2: ["x"]})
    assert await h.sched.drain()  # idle: at once
    h.submit(1, 2)
    assert not await h.sched.drain(timeout=0.01)
    drained = asyncio.ensure_future(h.sched.drain())
    h.go(1)
    await h.wait("done", 1)
    await settle()
    assert not drained.done()
    h.go(2)
    assert await drained
    assert (h.sched.running, h.sched.pending, h.sched.lanes) == (0, 0, 0)


async def test_cancel_all_cancels_running_and_drops_queued_without_reporting() -> None:
    h = Harness({1: ["x"], 2: ["x"], 3: ["y"], 4: ["z"]}, concurrency=2, max_pending=10)
    h.submit(1, 2, 3, 4, "free")
    await h.wait("started", 1, 3)
    await h.sched.cancel_all()
    assert sorted(h.cancelled) == [1, 3]
    assert h.started == [1, 3]
    assert h.done == []
    assert h.errors == []
    assert h.timeouts == []
    assert (h.sched.running, h.sched.pending, h.sched.lanes) == (0, 0, 0)
    assert h.sched.capacity() == 10
    # Still usable afterwards.
    h.submit(5)
    h.go(5)
    await h.wait("done", 5)
    assert h.done == [5]


async def test_cancel_all_drops_items_in_their_hook() -> None:
    hook_gate = asyncio.Event()
    entered = asyncio.Event()
    hook_cancelled: list[bool] = []

    async def on_error(item: Any, exc: BaseException) -> None:
        entered.set()
        try:
            await hook_gate.wait()
        except asyncio.CancelledError:
            hook_cancelled.append(True)
            raise

    h = Harness({1: ["x"]}, failing={1}, overrides={"on_error": on_error})
    h.submit(1)
    h.go(1)
    await entered.wait()
    await h.sched.cancel_all()
    assert hook_cancelled == [True]
    assert h.done == []
    assert (h.sched.running, h.sched.lanes) == (0, 0)


async def test_cancel_all_leaves_a_handler_that_ignores_it_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness({1: ["x"]}, swallow={1}, cancel_grace=0.02)
    h.submit(1)
    await h.wait("started", 1)
    with caplog.at_level(logging.WARNING, logger="tgrunner.scheduler"):
        await h.sched.cancel_all()
    assert any("left behind" in r.getMessage() for r in caplog.records)
    assert h.sched.running == 1  # it still runs, and still holds its slot
    assert h.sched.lanes == 0
    h.free(1)
    assert await h.sched.drain()
    assert h.done == []


async def test_lanes_are_deleted_when_they_empty() -> None:
    keys = {i: [f"a{i % 7}", f"b{i % 3}"] for i in range(40)}
    h = Harness(keys, concurrency=5, max_pending=100)
    h.submit(*range(40))
    assert h.sched.lanes == 10
    h.go(*range(40))
    assert await h.sched.drain()
    assert h.sched.lanes == 0
    assert h.sched.capacity() == 100


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"max_pending": 0}, "max_pending"),
        ({"max_pending_per_key": 0}, "max_pending_per_key"),
        ({"concurrency": 100, "max_pending": 50}, "max_pending"),
        ({"handler_timeout": 0}, "handler_timeout"),
        ({"handler_timeout": -1.0}, "handler_timeout"),
        ({"handler_timeout": float("nan")}, "handler_timeout"),
        ({"handler_timeout": "10"}, "handler_timeout"),
        ({"cancel_grace": 0}, "cancel_grace"),
        ({"cancel_grace": float("inf")}, "cancel_grace"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SchedulerOptions(**options)


def test_defaults() -> None:
    opts = SchedulerOptions()
    assert (opts.concurrency, opts.max_pending_per_key, opts.max_pending) == (500, 1000, 10_000)
    assert (opts.handler_timeout, opts.cancel_grace) == (None, 5.0)


def test_options_must_be_scheduler_options() -> None:
    async def handler(item: Any) -> None:
        return None

    with pytest.raises(ConfigError, match="SchedulerOptions"):
        Scheduler(handler, options={"concurrency": 5})  # type: ignore[arg-type]
