"""The scheduler's failures stay local: handlers, hooks and key functions that break."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Sequence
from typing import Any

import pytest
from sched_harness import Boom, Harness, settle

from tgrunner.scheduler import Scheduler

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
