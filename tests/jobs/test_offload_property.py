"""A property of ``offload()``: whatever mix of durations, errors, deaths, timeouts and
cancellations runs at once on a pool smaller than it, every call ends with exactly its own
outcome: its own result, its own exception, or the error of its own timeout or death."""

from __future__ import annotations

import asyncio
from typing import Any

import offload_work as work
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgrunner.errors import OffloadCrashed, OffloadTimeout
from tgrunner.jobs import offload, offload_pids

pytestmark = [pytest.mark.usefixtures("offload_pool"), pytest.mark.timeout(300)]

KINDS = ("ok", "ok-in-time", "raise", "exit", "timeout", "cancel")
LONG_MS = 5000  # what a call to be timed out or cancelled would take

calls = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 30)), min_size=1, max_size=8)


async def _one(tag: int, kind: str, ms: int) -> Any:
    if kind == "ok-in-time":
        return await offload(work.work, tag, "ok", ms, timeout=10)
    if kind == "timeout":
        return await offload(work.work, tag, "ok", LONG_MS, timeout=0.02 + ms / 1000)
    if kind == "cancel":
        return await offload(work.work, tag, "ok", LONG_MS)
    return await offload(work.work, tag, kind, ms)


async def _run(plan: list[tuple[str, int]]) -> list[BaseException | Any]:
    loop = asyncio.get_running_loop()
    tasks = []
    for tag, (kind, ms) in enumerate(plan):
        task = asyncio.ensure_future(_one(tag, kind, ms))
        if kind == "cancel":  # while it queues or while it runs, as the delay falls
            loop.call_later(ms / 1000, task.cancel)
        tasks.append(task)
    return await asyncio.gather(*tasks, return_exceptions=True)


@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(calls)
def test_every_call_ends_with_exactly_its_own_outcome(plan: list[tuple[str, int]]) -> None:
    outcomes = asyncio.run(_run(plan))
    for tag, ((kind, _), outcome) in enumerate(zip(plan, outcomes, strict=True)):
        if kind in ("ok", "ok-in-time"):
            assert outcome == tag
        elif kind == "raise":
            assert isinstance(outcome, ValueError) and outcome.args == (tag,)
        elif kind == "exit":
            assert isinstance(outcome, OffloadCrashed) and outcome.exit_code == 7
        elif kind == "timeout":
            assert isinstance(outcome, OffloadTimeout), outcome
        else:
            assert isinstance(outcome, asyncio.CancelledError), outcome
    assert len(offload_pids()) <= 2
    # The pool still serves, with its replacements.
    assert asyncio.run(_run([("ok", 0), ("ok", 0)])) == [0, 1]
