"""What the :class:`~tgrunner.scheduler.lanes.Scheduler` tells an observer of each finished
item, and the cheaper channel for the items that finished ok.

::

    sched.observe(observer, RunTimes(runs, waits, fold=fold_them, every=256))

- ``observer(item, exc, timed_out, run, waited)`` is called for each item that failed, was
  cancelled or timed out (or for every finished item, without ``run_times``): ``run`` is the
  seconds from its start to its end, ``waited`` the seconds from its submit to its start.
- With ``run_times``, an item that finished ok only has its ``run`` appended to
  ``run_times.runs`` and a nonzero ``waited`` to ``run_times.waits``, inline, with no call.
  Once ``runs`` holds ``every`` values, ``fold()`` is called, and must empty both lists.

Why two channels: the scheduler reports each update, and a Python call with five arguments is a
fair share of what the metrics of an echoed update cost; appending to a list is a tenth of it.

How the times are read (one ``perf_counter()`` per finished item, in the usual case):

- An item's end is stamped once. That stamp is also the start of the items its end lets start,
  in the same callback (the next of its chat, or the first of the ready queue): reading the
  clock again there would tell the same time within microseconds.
- Items that have to wait, for a key or a slot, share the stamp of the first of them queued in
  the same iteration of the event loop: an iteration's submits come in bursts (a fetched batch,
  a pump of parked updates). A stamp of its own kept by each waiting item, for as long as it
  waits, costs a cache miss or two when it is read back. A wait may look longer by what ran
  earlier in the same iteration, well below the 1 ms of the histograms' first bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Observer", "RunTimes"]

Observer = Callable[[Any, BaseException | None, bool, float, float], None]
"""``observer(item, exc, timed_out, run, waited)``: see the module doc."""


class RunTimes:
    """Where a scheduler appends the run times and lane waits of the items that finished ok.

    - ``runs``: seconds each ran; ``waits``: the lane waits among them that were not zero (the
      others are the difference in length).
    - ``fold``: called with no argument once ``runs`` holds ``every`` values (default 256); it
      must empty both lists.
    """

    __slots__ = ("every", "fold", "runs", "waits")

    def __init__(
        self,
        runs: list[float],
        waits: list[float],
        *,
        fold: Callable[[], None],
        every: int = 256,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be 1 or more, not {every!r}")
        self.runs = runs
        self.waits = waits
        self.fold = fold
        self.every = every
