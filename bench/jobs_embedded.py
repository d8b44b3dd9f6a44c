"""The embedded backend's rows of the jobs benchmark (:mod:`bench.jobs`): SQLite in a fresh
folder, ``python -m tgrunner.jobs.process`` processes, jobs queued through the bot's side
(:class:`~tgrunner.jobs.backends.sqlite.SQLiteQueue`, as ``Task.enqueue`` does in a bot)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from bench.bots import jobs_tasks
from bench.harness import LOGS
from bench.jobs import JobPlan, JobRow, Workers, chaos_figures, cpu_of, marks, worker_argv
from tgrunner.jobs.backends.sqlite import SQLiteQueue
from tgrunner.jobs.queue import use_queue
from tgrunner.testing import FakeTelegram

__all__ = ["PRODUCERS", "ROWS", "enqueue_all", "goals"]

TARGET_JOBS_PER_S = 2000.0
IDLE_SECONDS = 3.0  # how long the idle worker's CPU is measured
CHAOS_CONCURRENCY = 10
PRODUCERS = 50  # handlers queueing at once in the throughput part


async def enqueue_all(count: int, enqueue: Callable[[], Awaitable[Any]]) -> None:
    """``count`` calls of ``enqueue``, made by :data:`PRODUCERS` concurrent producers (as
    handlers of a busy bot are), each awaiting its own one by one."""

    async def produce(share: int) -> None:
        for _ in range(share):
            await enqueue()

    shares = [count // PRODUCERS + (i < count % PRODUCERS) for i in range(PRODUCERS)]
    await asyncio.gather(*(produce(n) for n in shares))


@asynccontextmanager
async def _queue(plan: JobPlan, name: str) -> AsyncIterator[tuple[str, SQLiteQueue]]:
    """A fresh embedded queue in the scratch folder ``name``, this process's queue."""
    folder = plan.scratch / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "jobs.sqlite"
    url = f"sqlite:///{path}"
    queue = SQLiteQueue(url, path)
    use_queue(queue)
    try:
        yield url, queue
    finally:
        use_queue(None)
        await queue.close()


async def _drained(path: Path, timeout: float) -> None:
    """Until no job is queued, scheduled or started and none owes its reply (the workers'
    commits wake nothing in this process: the file is read every 10 ms)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        async with asyncio.timeout(timeout):
            while True:
                (live,) = db.execute(
                    "SELECT count(*) FROM jobs WHERE state IN ('queued', 'scheduled', 'started') "
                    "OR (reply_to IS NOT NULL AND reply_sent = 0)"
                ).fetchone()
                if live == 0:
                    return
                await asyncio.sleep(0.01)
    finally:
        db.close()


def _states(path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())


async def throughput(plan: JobPlan, tg: FakeTelegram, *, concurrency: int) -> dict[str, Any]:
    async with _queue(plan, f"throughput-{concurrency}") as (url, queue):
        workers = Workers(LOGS / f"jobs-embedded-throughput-{concurrency}.log")
        try:
            for _ in range(plan.workers):
                await workers.start(worker_argv(url, tg, "--concurrency", str(concurrency)))
            cpu0 = cpu_of(workers.pids)
            own0 = time.process_time()
            began = time.perf_counter()
            await enqueue_all(plan.jobs, jobs_tasks.noop.enqueue)
            queued = time.perf_counter() - began
            enqueue_cpu = time.process_time() - own0
            await _drained(queue.store.path, timeout=60 + plan.jobs / 100)
            seconds = time.perf_counter() - began
            cpu = cpu_of(workers.pids) - cpu0
        finally:
            codes = await workers.stop()
        states = _states(queue.store.path)
    return {
        "jobs": plan.jobs,
        "seconds": round(seconds, 2),
        "jobs_per_s": round(plan.jobs / seconds),
        "worker_cpu_us": round(cpu / plan.jobs * 1e6),
        "enqueue_per_s": round(plan.jobs / queued),
        "enqueue_cpu_us": round(enqueue_cpu / plan.jobs * 1e6),
        "finished": states.get("finished", 0),
        "exit_codes": codes,
        "note": f"{plan.workers} workers × concurrency {concurrency}",
    }


async def wake(plan: JobPlan, tg: FakeTelegram, *, mode: str) -> dict[str, Any]:
    async with _queue(plan, f"wake-{mode}") as (url, queue):
        started_file = queue.store.path.with_name("starts.txt")
        workers = Workers(LOGS / f"jobs-embedded-wake-{mode}.log",
                          env={"BENCH_JOB_MARKS": str(started_file)})  # fmt: skip
        try:
            await workers.start(worker_argv(url, tg, "--wake", mode))
            await jobs_tasks.noop.enqueue()  # a warm-up: the worker imports the tasks
            await _drained(queue.store.path, timeout=30)
            await asyncio.sleep(1.0)  # past the start-up's own CPU
            cpu0 = cpu_of(workers.pids)
            await asyncio.sleep(IDLE_SECONDS)
            idle = (cpu_of(workers.pids) - cpu0) / IDLE_SECONDS
            queued_at: dict[str, float] = {}
            for _ in range(plan.wake_jobs):
                at = time.time()
                queued_at[(await jobs_tasks.marked_noop.enqueue()).id] = at
                await asyncio.sleep(plan.wake_gap)
            await _drained(queue.store.path, timeout=60)
        finally:
            codes = await workers.stop()
    starts = marks(started_file)
    waits = sorted((starts[job_id][0][1] - at) * 1000 for job_id, at in queued_at.items())
    return {
        "jobs": len(waits),
        "p50_ms": round(statistics.median(waits), 2),
        "p99_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))], 2),
        "max_ms": round(waits[-1], 2),
        "idle_cpu_pct": round(idle * 100, 2),
        "exit_codes": codes,
        "note": {"fifo": "doorbell FIFO + due timers", "poll": "polls 5 → 100 ms"}[mode],
    }


async def chaos_run(
    plan: JobPlan,
    tg: FakeTelegram,
    url: str,
    *,
    log: Path,
    started: Path,
    drained: Callable[[], Awaitable[None]],
) -> tuple[Workers, dict[str, int], float, list[int | None]]:
    """The chaos part on the queue at ``url`` (this process's queue, for the enqueues):
    ``plan.workers`` job workers, the chaos jobs queued (each replying to its own message),
    a worker SIGKILLed every ``plan.kill_every`` s until ``drained()`` returns. Returns the
    workers, job id → message id, the seconds from the first enqueue, and the exit codes."""
    workers = Workers(log, env={"BENCH_JOB_MARKS": str(started)})
    stop = asyncio.Event()
    killer: asyncio.Task[None] | None = None
    try:
        for _ in range(plan.workers):
            await workers.start(worker_argv(url, tg, "--concurrency", str(CHAOS_CONCURRENCY)))
        user = tg.user("Chaos")
        asked: dict[str, int] = {}
        began = time.perf_counter()
        for i, seconds in enumerate(plan.durations()):
            message = user.send(f"job {i}")
            job = await jobs_tasks.chaos_job.enqueue(seconds, f"done {i}", reply_to=message)
            asked[job.id] = message["message_id"]
        killer = asyncio.create_task(workers.killer(plan.kill_every, stop))
        await drained()
        elapsed = time.perf_counter() - began
    finally:
        stop.set()
        if killer is not None:
            await killer
        codes = await workers.stop()
    return workers, asked, elapsed, codes


def chaos_result(
    plan: JobPlan, elapsed: float, figures: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """The chaos row's result: the run's size and speed, ``figures`` (:func:`chaos_figures`)
    and ``more`` (deaths, states, exit codes)."""
    return {
        "jobs": plan.chaos_jobs,
        "seconds": round(elapsed, 1),
        "jobs_per_s": round(plan.chaos_jobs / elapsed),
        **figures,
        **more,
        "note": f"{plan.workers} workers × concurrency {CHAOS_CONCURRENCY}, lease 5 s",
    }


async def chaos(plan: JobPlan, tg: FakeTelegram) -> dict[str, Any]:
    async with _queue(plan, "chaos") as (url, queue):
        path = queue.store.path
        started = path.with_name("starts.txt")
        workers, asked, elapsed, codes = await chaos_run(
            plan, tg, url, log=LOGS / "jobs-embedded-chaos.log", started=started,
            drained=lambda: _drained(path, timeout=600),
        )  # fmt: skip
        states = _states(path)
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            (deaths,) = db.execute("SELECT coalesce(sum(deaths), 0) FROM jobs").fetchone()
    figures = chaos_figures(tg, asked, marks(started), workers.kills)
    return chaos_result(plan, elapsed, figures, deaths=deaths, states=states, exit_codes=codes)


ROWS: tuple[JobRow, ...] = (
    JobRow("embedded", "embedded (SQLite), 2 workers × 1", "embedded", "throughput",
           partial(throughput, concurrency=1)),
    JobRow("embedded-c8", "embedded (SQLite), 2 workers × 8", "embedded", "throughput",
           partial(throughput, concurrency=8)),
    JobRow("embedded-chaos", "embedded (SQLite), SIGKILL every 3 s", "embedded", "chaos", chaos),
    JobRow("embedded-wake-fifo", "embedded, idle worker on its doorbell FIFO", "embedded",
           "wake", partial(wake, mode="fifo")),
    JobRow("embedded-wake-poll", "embedded, idle worker polling", "embedded", "wake",
           partial(wake, mode="poll")),
)  # fmt: skip


def goals(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The issue's goals for the embedded backend, with whether each was met."""
    by = {r["row"]: r for r in results if "skipped" not in r}
    out = []
    tp = by.get("embedded")
    if tp:
        out.append((f"No-op jobs, 2 workers: **{tp['jobs_per_s']:,} jobs/s** enqueue to "
                    f"completion (goal ≥ {TARGET_JOBS_PER_S:,.0f})",
                    tp["jobs_per_s"] >= TARGET_JOBS_PER_S))  # fmt: skip
    ch = by.get("embedded-chaos")
    if ch:
        final = sum(v for k, v in ch["states"].items() if k in ("finished", "failed"))
        out.append((f"Chaos: {ch['kills']} SIGKILLs, {ch['jobs']:,} jobs: {final:,} ended, "
                    f"**{ch['lost']} without a reply, {ch['duplicates']} duplicate"
                    f"{'' if ch['duplicates'] == 1 else 's'}** (bound: "
                    f"{ch['cut_runs']} runs cut by a kill); an abandoned job waited at most "
                    f"**{ch['max_wait_s']} s** (goal: every job one reply, back within 10 s)",
                    ch["lost"] == 0 and final == ch["jobs"]
                    and ch["duplicates"] <= ch["cut_runs"]
                    and (ch["max_wait_s"] or 0) <= 10))  # fmt: skip
    return out
