"""Plain RQ's jobs for :mod:`bench.jobs_rq`: the bodies of :mod:`bench.jobs_rq_tasks`, in a
module that imports neither tgrunner nor anything heavy, as an RQ job module should be (RQ's
forking worker imports a job's module in every work horse it forks).

``rq_chaos`` appends ``start JOB_ID TIME PID`` to the file ``marks`` when it starts, then
sends its reply itself, as an RQ job of the aiogram + RQ pattern does (with ``BENCH_TOKEN``
and ``BENCH_API_URL``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

from rq import get_current_job

__all__ = ["mark", "noop", "rq_chaos"]


def noop() -> None:
    """Plain RQ's no-op job."""


def mark(marks: str, job_id: str) -> None:
    """Append ``start JOB_ID TIME PID`` to the file ``marks``."""
    with open(marks, "a") as f:
        f.write(f"start {job_id} {time.time():.6f} {os.getpid()}\n")


def rq_chaos(seconds: float, chat_id: int, n: int, marks: str) -> str:
    """Plain RQ's chaos job: sleeps ``seconds``, then replies ``done N`` to message ``n``."""
    job = get_current_job()
    mark(marks, job.id if job is not None else "?")
    time.sleep(seconds)
    body = {
        "chat_id": chat_id,
        "text": f"done {n}",
        "reply_parameters": {"message_id": n, "allow_sending_without_reply": True},
    }
    url = f"{os.environ['BENCH_API_URL']}/bot{os.environ['BENCH_TOKEN']}/sendMessage"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return f"done {n}"
