"""Stopping from outside the event loop: a cancelled ``serve()`` leaves nothing behind,
``stop()`` from another thread ends a long poll at once, and ``run()`` leaves the process's
garbage collector as it found it."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import pytest
from runtime_support import FAST, echo, make_runner, serving, until

from tgrunner.client.bot import Bot
from tgrunner.errors import NetworkError
from tgrunner.intake.journal import Journal
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram

# Where FakeTelegram's own tasks (its HTTP server, its long polls) run: not the runtime's.
_FAKE = ("/tgrunner/testing/", "/tgrunner/_http/")


def _left_running(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since ``before`` that are still pending, FakeTelegram's left out."""
    me = asyncio.current_task()
    left = []
    for task in asyncio.all_tasks() - before:
        if task is me or task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and any(part in code.co_filename for part in _FAKE):
            continue
        left.append(task)
    return left


async def test_a_cancelled_serve_leaves_nothing_behind(tg: FakeTelegram) -> None:
    before = asyncio.all_tasks()
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    runner = make_runner(tg.api_url, tg.token, handler)
    task = serving(runner)
    tg.user("Alice").send("stay a while")
    await until(entered.wait(), task)
    assert not task.done()
    task.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert task.cancelled()  # the cancellation went on, not swallowed into a return code
    assert cancelled.is_set()  # the running handler was cancelled too
    assert _left_running(before) == []
    with pytest.raises(NetworkError, match="closed"):
        await runner.bot.call("getMe")  # the runner's own client is closed
    # The journal is closed and unlocked: the next run opens it, and the unfinished update
    # is still there to be replayed.
    assert isinstance(runner.intake, Journal)
    journal = Journal(runner.intake.path, bot_id=runner.bot.id)
    try:
        assert [u["message"]["text"] for u in journal.unfinished()] == ["stay a while"]
    finally:
        journal.close_now()


def _run_in_thread(tg: FakeTelegram, runner: Runner) -> tuple[list[float], threading.Thread]:
    """Start a thread that stops ``runner`` once it long-polls; it records when it stopped."""
    stopped_at: list[float] = []

    def stop_when_polling() -> None:
        tg.wait_until_polling_sync(timeout=20)
        stopped_at.append(time.monotonic())
        runner.stop()

    stopper = threading.Thread(target=stop_when_polling, name="test-stopper", daemon=True)
    stopper.start()
    return stopped_at, stopper


def test_stop_from_another_thread_ends_a_long_poll_at_once() -> None:
    with FakeTelegram().in_thread() as tg:
        # The default 30 s long poll: the stop must not wait for it to come back.
        runner = Runner(echo, token=tg.token, api_url=tg.api_url, settings=Settings())
        assert runner.settings.polling.timeout == 30
        stopped_at, stopper = _run_in_thread(tg, runner)
        code = runner.run()
        returned_at = time.monotonic()
        stopper.join(5)
        assert code == 0
        assert stopped_at, "the runner returned before it was stopped"
        assert returned_at - stopped_at[0] < 2.0


def test_run_leaves_the_garbage_collector_alone() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        with FakeTelegram().in_thread() as tg:
            runner = Runner(
                echo, token=tg.token, api_url=tg.api_url, settings=Settings(polling=FAST)
            )
            _, stopper = _run_in_thread(tg, runner)
            assert runner.run() == 0
            stopper.join(5)
        assert gc.get_threshold() == threshold
        assert gc.get_freeze_count() == frozen
    finally:
        # Put back what a failing run changed, so later tests see the usual collector.
        gc.set_threshold(*threshold)
        if gc.get_freeze_count() != frozen:
            gc.unfreeze()
