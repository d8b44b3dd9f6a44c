"""Micro-benchmark: what the metrics add to the scheduler, per item, with no network.

``--items`` items over ``--keys`` keys are submitted at once to a
:class:`~tgrunner.scheduler.Scheduler` (concurrency 500) whose handler only yields once, with
no observer and with the metrics' (``Metrics.scheduler_observer`` and
``scheduler_run_times``), in alternating order, ``--repeat`` times each. It prints the main
thread's CPU per item of each, and the difference (median and minimum of the runs).

    .venv/bin/python bench/sched_observe_micro.py
    taskset -c 1 .venv/bin/python bench/sched_observe_micro.py --repeat 40
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from typing import Any

import uvloop

from tgrunner.observability import Metrics
from tgrunner.scheduler import Scheduler, SchedulerOptions


async def _handler(item: Any) -> None:
    await asyncio.sleep(0)


async def _once(items: list[dict[str, Any]], keys: list[tuple[int]], observed: bool) -> float:
    """Microseconds of the main thread's CPU per item, for one run."""
    finished = asyncio.get_running_loop().create_future()
    left = len(items)

    def on_done(item: Any) -> None:
        nonlocal left
        left -= 1
        if not left:
            finished.set_result(None)

    options = SchedulerOptions(concurrency=500, max_pending=10**6, max_pending_per_key=10**6)
    sched: Scheduler[Any] = Scheduler(_handler, options=options, on_done=on_done)
    if observed:
        metrics = Metrics()
        sched.observe(metrics.scheduler_observer(set()), metrics.scheduler_run_times())
    began = time.thread_time()
    for item, key in zip(items, keys, strict=True):
        sched.submit(item, key)
    await finished
    return (time.thread_time() - began) / len(items) * 1e6


async def _main(args: argparse.Namespace) -> None:
    rng = random.Random(0)
    items = [{"update_id": i, "chat": rng.randrange(args.keys)} for i in range(args.items)]
    keys = [(item["chat"],) for item in items]
    gc.freeze()
    runs: dict[bool, list[float]] = {False: [], True: []}
    for i in range(args.repeat):
        for observed in (False, True) if i % 2 == 0 else (True, False):
            runs[observed].append(await _once(items, keys, observed))
    for name, pick in (("median", statistics.median), ("min", min)):
        plain, observed = pick(runs[False]), pick(runs[True])
        print(
            f"{name:6s}: {plain:.3f} µs per item without metrics, {observed:.3f} with, "
            f"+{observed - plain:.3f} µs"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=50_000, help="items per run (default 50000)")
    p.add_argument("--keys", type=int, default=1_000, help="distinct keys (default 1000)")
    p.add_argument("--repeat", type=int, default=20, help="runs of each (default 20)")
    uvloop.run(_main(p.parse_args()))


if __name__ == "__main__":
    main()
