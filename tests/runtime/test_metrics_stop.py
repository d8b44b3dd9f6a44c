"""Metrics across a clean stop: the updates still queued when it comes are skipped (they stay
in the journal for the next start), and are not counted as handled.

The scheduler hands the times of updates handled ok to the metrics inline (``RunTimes``),
which cannot tell a skipped update from a handled one; the runner turns that channel off when
its stop begins, so that what ends from then on reaches the observer, which can.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tgrunner.frontends.native import Context, Router
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram, running

pytest.importorskip("prometheus_client")

pytestmark = pytest.mark.timeout(60)


async def _until(check: object, timeout: float = 10.0) -> None:
    # The runner's stop flag has no event of its own to wait on: look at it every loop turn.
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the runner did not begin its stop")
        await asyncio.sleep(0.001)


async def test_updates_skipped_at_a_stop_are_not_counted_as_handled(tg: FakeTelegram) -> None:
    router = Router()
    first_started = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []

    @router.message()
    async def hold(ctx: Context) -> None:
        text = ctx.update["message"]["text"]
        ran.append(text)
        if text == "1":
            first_started.set()
            await release.wait()  # the others of this chat queue behind it

    alice = tg.user("Alice")
    settings = Settings(metrics="127.0.0.1:0")
    async with running(router, tg, settings=settings) as runner:
        for n in range(1, 6):
            alice.send(str(n))
        await asyncio.wait_for(first_started.wait(), 10)
        assert runner.scheduler.pending == 4
        runner.stop()
        await _until(lambda: runner._stopping)
        release.set()  # 1 ends during the stop; 2 to 5 are skipped, not run
    assert ran == ["1"]
    assert runner.observation is not None
    values = runner.observation.metrics.monotonic_values()
    handled = values["tgrunner_updates_handled_total"]
    assert handled[("ok",)] == 1
    assert sum(handled.values()) == 1
