"""Per-key FIFO lanes under a global limit: the order contract (see :mod:`.lanes`)."""

from tgrunner.errors import LaneFull, SchedulerFull
from tgrunner.scheduler.lanes import Scheduler
from tgrunner.scheduler.options import SchedulerOptions

__all__ = ["LaneFull", "Scheduler", "SchedulerFull", "SchedulerOptions"]
