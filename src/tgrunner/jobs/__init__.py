"""Heavy work off the bot: jobs run by job workers, their results sent back as replies.

So far only the embedded store (:mod:`tgrunner.jobs.store`) is here.
"""

from tgrunner.jobs.offload import configure_offload, offload, offload_pids, shutdown_offload
from tgrunner.jobs.store import (
    DEATHS_ERROR,
    FINAL_STATES,
    MAX_DEATHS,
    STATES,
    Job,
    JobState,
    JobStore,
)

__all__ = [
    "DEATHS_ERROR",
    "FINAL_STATES",
    "MAX_DEATHS",
    "STATES",
    "Job",
    "JobState",
    "JobStore",
    "configure_offload",
    "offload",
    "offload_pids",
    "shutdown_offload",
]
