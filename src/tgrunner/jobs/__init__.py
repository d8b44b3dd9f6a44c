"""Heavy work off the bot: jobs run by job workers, their results sent back as replies.

::

    from tgrunner.jobs import task

    @task(retries=3, timeout=120)
    def render(prompt: str) -> str:
        ...

    await render.enqueue(prompt, reply_to=message)

- :func:`task` makes a function a task; :meth:`Task.enqueue` queues a run and returns a
  :class:`Job` (``job.id``, ``await job.status()``, ``await job.result(timeout=...)``).
- :class:`Reply` is a result that is more than text; a task function with a
  :class:`JobContext` parameter reports progress and sends as it goes; :func:`on_failure`
  registers a hook for jobs that fail for good.
- The job worker is :mod:`tgrunner.jobs.worker` (``python -m tgrunner.jobs.process``).
- The queue: :func:`connect` / :func:`current_queue` (:mod:`tgrunner.jobs.queue`); the
  embedded store is :class:`JobStore`.
"""

from tgrunner.jobs.context import JobContext
from tgrunner.jobs.delivery import ReplyPolicy
from tgrunner.jobs.execute import on_failure
from tgrunner.jobs.handle import Job
from tgrunner.jobs.offload import configure_offload, offload, offload_pids, shutdown_offload
from tgrunner.jobs.queue import JobInfo, JobQueue, JobRequest, connect, current_queue, use_queue
from tgrunner.jobs.reply import Reply
from tgrunner.jobs.store import (
    DEATHS_ERROR,
    FINAL_STATES,
    MAX_DEATHS,
    STATES,
    JobRecord,
    JobState,
    JobStore,
)
from tgrunner.jobs.task import DEFAULT_FAILURE_MESSAGE, Task, task

__all__ = [
    "DEATHS_ERROR",
    "DEFAULT_FAILURE_MESSAGE",
    "FINAL_STATES",
    "MAX_DEATHS",
    "STATES",
    "Job",
    "JobContext",
    "JobInfo",
    "JobQueue",
    "JobRecord",
    "JobRequest",
    "JobState",
    "JobStore",
    "Reply",
    "ReplyPolicy",
    "Task",
    "configure_offload",
    "connect",
    "current_queue",
    "offload",
    "offload_pids",
    "on_failure",
    "shutdown_offload",
    "task",
    "use_queue",
]
