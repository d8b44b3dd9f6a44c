"""The supervisor on uvloop (what ``tgrunner run`` uses): pipes, pidfds and timers behave the
same; a killed worker's update is redone."""

from __future__ import annotations

import asyncio
import sys

import pytest
from proc_harness import BOTS, fetch_updates, harness

from tgrunner.protocols import Executor
from tgrunner.testing import FakeTelegram

uvloop = pytest.importorskip("uvloop")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


async def _scenario() -> None:
    async with FakeTelegram() as tg:
        alice = tg.user("Alice")
        alice.send("wait 2000")
        alice.send("next")
        updates = await fetch_updates(tg, 2)
        async with harness(tg, workers=1) as h:
            assert isinstance(h.executor, Executor)
            await h.submit(updates)  # the first is sent at once; its reply is 2 s away
            assert h.executor.stats()[0].in_flight == 1
            pid = h.kill(0)
            died = await h.wait_event("died", lambda e: e.pid == pid)
            assert died.detail == "was killed by SIGKILL"
            await h.drain()
            assert h.errors == []
            assert h.pid(0) != pid
        assert [m["text"] for m in tg.replies(alice)] == ["waited 2000", "next"]


def test_a_killed_worker_is_redone_with_the_supervisor_on_uvloop() -> None:
    sys.path.insert(0, str(BOTS))
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_scenario())
    finally:
        sys.path.remove(str(BOTS))
