"""Per-key FIFO lanes under a global limit: the order contract (see :mod:`.lanes`)."""

from tgrunner.errors import SchedulerFull
from tgrunner.scheduler.lanes import Scheduler, SchedulerOptions

__all__ = ["Scheduler", "SchedulerFull", "SchedulerOptions"]
