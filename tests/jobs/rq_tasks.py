"""Tasks of the RQ backend's process tests (imported as ``rq_tasks``: worker processes get
this folder on their path)."""

from __future__ import annotations

import asyncio
import sys

from tgrunner.jobs import JobContext, task


@task
async def sleepy(text: str, ctx: JobContext) -> str:
    """Says ``started ID DEATHS`` on stderr; its first run sleeps a minute (its worker is
    killed meanwhile), a run after a death replies at once."""
    print(f"started {ctx.job_id} {ctx.deaths}", file=sys.stderr, flush=True)
    if ctx.deaths == 0:
        await asyncio.sleep(60)
    return text
