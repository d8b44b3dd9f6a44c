"""Plain RQ's jobs for the RQ rows of the jobs benchmark (:mod:`bench.jobs_rq`): the bodies of
:mod:`bench.bots.jobs_tasks`, as plain functions in a module that imports neither tgrunner nor
anything heavy, as an RQ job module should be (RQ's forking worker imports a job's module in
every work horse it forks).

With ``BENCH_JOB_MARKS`` set to a file, :func:`marked_noop` and :func:`chaos_job` append
``<job id> <pid> <time>`` to it as they start, as the tasks do. :func:`chaos_job` sends its
reply itself, as an RQ job of the aiogram + RQ pattern does (``BENCH_TOKEN`` and
``BENCH_API_URL``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

from rq import get_current_job

__all__ = ["chaos_job", "marked_noop", "noop"]

_MARKS = os.environ.get("BENCH_JOB_MARKS")


def _mark() -> None:
    job = get_current_job()
    if _MARKS and job is not None:
        line = f"{job.id} {os.getpid()} {time.time():.6f}\n".encode()
        fd = os.open(_MARKS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def noop() -> None:
    """Nothing: the queue's own cost per job."""


def marked_noop() -> None:
    """Nothing, its start marked."""
    _mark()


def chaos_job(seconds: float, text: str, chat_id: int, message_id: int) -> str:
    """``seconds`` of blocking work (a sleep), then ``text`` sent as a reply to the message."""
    _mark()
    time.sleep(seconds)
    body = {
        "chat_id": chat_id,
        "text": text,
        "reply_parameters": {"message_id": message_id, "allow_sending_without_reply": True},
    }
    url = f"{os.environ['BENCH_API_URL']}/bot{os.environ['BENCH_TOKEN']}/sendMessage"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return text
