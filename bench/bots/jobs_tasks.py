"""The tasks of the jobs benchmark (``python -m bench --scenario jobs``), imported by the job
workers as ``bench.bots.jobs_tasks``.

With ``BENCH_JOB_MARKS`` set to a file, :func:`marked_noop` and :func:`chaos_job` append
``<job id> <pid> <time>`` to it as they start (one short ``O_APPEND`` write: lines from
several processes do not mix), for the wake-up latency and the time an abandoned job waited.
"""

from __future__ import annotations

import os
import time

from tgrunner.jobs import JobContext, task

_MARKS = os.environ.get("BENCH_JOB_MARKS")


def mark(job_id: str) -> None:
    """Append this run's start to the marks file, if there is one."""
    if _MARKS:
        line = f"{job_id} {os.getpid()} {time.time():.6f}\n".encode()
        fd = os.open(_MARKS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


@task
def noop() -> None:
    """Nothing: the queue's own cost per job."""


@task
def marked_noop(ctx: JobContext) -> None:
    """Nothing, its start marked."""
    mark(ctx.job_id)


@task
def chaos_job(seconds: float, text: str, ctx: JobContext) -> str:
    """``seconds`` of blocking work (a sleep, in the worker's thread), then ``text`` as the
    reply; its start marked."""
    mark(ctx.job_id)
    time.sleep(seconds)
    return text


@task
async def anoop() -> None:
    """Nothing, on the worker's event loop."""
