"""tgrunner's jobs for :mod:`bench.jobs_rq`: the bodies of plain RQ's
(:mod:`bench.jobs_rq_plain`) as tasks. ``anoop_task`` is the no-op as an async function,
which the job worker runs on its loop instead of in a thread of its own."""

from __future__ import annotations

import time

from bench.jobs_rq_plain import mark
from tgrunner.jobs import JobContext, task

__all__ = ["anoop_task", "noop_task", "tg_chaos"]


@task
def noop_task() -> None:
    """The no-op job (the body of plain RQ's)."""


@task
async def anoop_task() -> None:
    """The no-op job, async."""


@task
def tg_chaos(seconds: float, n: int, marks: str, ctx: JobContext) -> str:
    """The chaos job: sleeps ``seconds``; its result is the reply ``done N``."""
    mark(marks, ctx.job_id)
    time.sleep(seconds)
    return f"done {n}"
