"""The harness of the worker-process tests: a real ProcessExecutor under a real Scheduler (as
the runner composes them), fed with updates that FakeTelegram users sent, and the checks of
what FakeTelegram recorded (per-chat order, nothing lost, duplicates bounded)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.executors.processes import ProcessExecutor, WorkerEvent, WorkerOptions, slot_for
from tgrunner.keys import default_keys
from tgrunner.scheduler import Scheduler, SchedulerOptions
from tgrunner.testing import FakeTelegram

__all__ = ["BOTS", "Harness", "check_replies", "fetch_updates", "harness", "users_in_slot"]

BOTS = Path(__file__).resolve().parents[2] / "bots"
"""Where the test bots are (on the workers' ``sys.path`` through the supervisor's)."""

JSON = dict[str, Any]


async def fetch_updates(tg: FakeTelegram, count: int, timeout: float = 10) -> list[JSON]:
    """The next ``count`` updates FakeTelegram holds for the bot, through ``getUpdates``."""
    found: list[JSON] = []
    offset: int | None = None
    async with Bot(tg.token, api_url=tg.api_url) as bot, asyncio.timeout(timeout):
        while len(found) < count:
            batch = await bot.get_updates(offset=offset, limit=100, timeout=1)
            if batch:
                found.extend(batch)
                offset = batch[-1]["update_id"] + 1
    return found


class Harness:
    """A started executor, the scheduler driving it, and what happened to both."""

    def __init__(self, executor: ProcessExecutor, scheduler: Scheduler[JSON]) -> None:
        self.executor = executor
        self.scheduler = scheduler
        self.events: list[WorkerEvent] = []
        self.errors: list[tuple[JSON, BaseException]] = []
        self.timeouts: list[JSON] = []
        # The slot's updates in flight at each death: a bound on the updates a death redoes.
        self.in_flight_at_deaths: list[int] = []
        self._changed = asyncio.Condition()

    def on_event(self, event: WorkerEvent) -> None:
        self.events.append(event)
        if event.kind == "died":
            self.in_flight_at_deaths.append(self.executor.stats()[event.slot].in_flight)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def on_error(self, update: JSON, exc: BaseException) -> None:
        self.errors.append((update, exc))
        asyncio.get_running_loop().create_task(self._notify())

    def on_timeout(self, update: JSON) -> None:
        self.timeouts.append(update)

    async def wait_event(
        self, kind: str, where: Callable[[WorkerEvent], bool] = lambda e: True, timeout: float = 15
    ) -> WorkerEvent:
        """The first event of ``kind`` (matching ``where``), waiting for it if need be."""

        def found() -> WorkerEvent | None:
            return next((e for e in self.events if e.kind == kind and where(e)), None)

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event

    async def wait_for(self, check: Callable[[], bool], timeout: float = 15) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(check)

    async def submit(self, updates: Iterable[JSON]) -> None:
        """Submit each update as the runner does: when the scheduler has room."""
        sched = self.scheduler
        for update in updates:
            await sched.wait_capacity(1)
            sched.submit(update)

    async def drain(self, timeout: float = 30) -> None:
        assert await self.scheduler.drain(timeout), "the updates did not all finish in time"

    def pid(self, slot: int) -> int:
        return self.executor.stats()[slot].pid

    def kill(self, slot: int, sig: int = signal.SIGKILL) -> int:
        """Signal the slot's worker process by its PID; return the PID."""
        pid = self.pid(slot)
        assert pid > 0
        os.kill(pid, sig)
        return pid


@asynccontextmanager
async def harness(
    tg: FakeTelegram,
    target: str = "worker_bot:router",
    *,
    workers: int = 2,
    share: int = 8,
    concurrency: int = 16,
    handler_timeout: float | None = None,
    keys: Callable[[Any], Iterable[Hashable] | None] = default_keys,
    on_failure: Callable[[BaseException], None] | None = None,
    on_poison: Callable[[int | None], None] | None = None,
    **options: Any,
) -> AsyncIterator[Harness]:
    """A started executor on ``target`` and its scheduler; both closed at the end.

    ``options`` are :class:`WorkerOptions` fields; ``on_failure`` and ``on_poison`` go to
    the executor.
    """
    holder: list[Harness] = []

    def failed(exc: BaseException) -> None:
        if on_failure is not None:
            on_failure(exc)
        asyncio.get_running_loop().create_task(holder[0]._notify())

    executor = ProcessExecutor(
        target,
        token=tg.token,
        api_url=tg.api_url,
        share=share,
        options=WorkerOptions(workers=workers, **options),
        keys=keys,
        on_failure=failed,
        on_poison=on_poison,
        on_event=lambda e: holder[0].on_event(e),
    )
    scheduler: Scheduler[JSON] = Scheduler(
        executor.execute,
        options=SchedulerOptions(
            concurrency=concurrency, handler_timeout=handler_timeout, cancel_grace=2.0
        ),
        key=keys,
        on_error=lambda u, e: holder[0].on_error(u, e),
        on_timeout=lambda u: holder[0].on_timeout(u),
    )
    h = Harness(executor, scheduler)
    holder.append(h)
    try:
        await executor.start()
        yield h
    finally:
        await scheduler.cancel_all()
        await executor.close(fast=True)


def check_replies(tg: FakeTelegram, chat: Any, sent: list[str]) -> int:
    """The bot's replies in ``chat`` are ``sent`` in order, each at least once, a repeat only
    right after itself (a redone update); returns how many repeats there were."""
    texts = [m["text"] for m in tg.replies(chat)]
    distinct = [t for i, t in enumerate(texts) if i == 0 or texts[i - 1] != t]
    assert distinct == sent, f"replies {texts} are not {sent} in order"
    return len(texts) - len(distinct)


def users_in_slot(tg: FakeTelegram, slot: int, count: int, workers: int = 2) -> list[Any]:
    """``count`` new simulated users whose private chats route to ``slot``."""
    found: list[Any] = []
    n = 0
    while len(found) < count:
        user = tg.user(f"slot{slot}-{n}")
        n += 1
        if slot_for(f"c:{user.id}", workers) == slot:
            found.append(user)
    return found
