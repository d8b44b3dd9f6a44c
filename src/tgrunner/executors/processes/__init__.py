"""Worker processes: all cores of a machine, per-key order kept, a dead worker's updates redone.

:class:`ProcessExecutor` is an :class:`~tgrunner.protocols.Executor`: the runner's scheduler
hands it ready updates, and it runs them in worker processes that load the bot from its
import string. See :mod:`.supervisor` for what it promises, :mod:`.wire` for the frames,
:mod:`.process` for how a death or a hang is seen and :mod:`.worker` for the worker's side.
"""

from tgrunner.executors.processes.options import (
    CRASH_LIMIT,
    POISON_DEATHS,
    WorkerOptions,
    available_cpus,
    resolve_workers,
    share_of,
)
from tgrunner.executors.processes.routing import slot_for, stable_hash
from tgrunner.executors.processes.slots import WorkerEvent, WorkerStats
from tgrunner.executors.processes.supervisor import ProcessExecutor

__all__ = [
    "CRASH_LIMIT",
    "POISON_DEATHS",
    "ProcessExecutor",
    "WorkerEvent",
    "WorkerOptions",
    "WorkerStats",
    "available_cpus",
    "resolve_workers",
    "share_of",
    "slot_for",
    "stable_hash",
]
