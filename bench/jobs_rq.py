"""The RQ rows of the jobs benchmark (:mod:`bench.jobs`): tgrunner's RQ backend beside plain RQ,
on this machine's Redis (database 13; only the keys of the rows' own queues are deleted).

- **RQ backend** rows: ``python -m tgrunner.jobs.process --jobs redis://…`` processes
  (:class:`~tgrunner.jobs.backends.rq_source.RQSource`), jobs queued through the bot's side
  (:class:`~tgrunner.jobs.backends.rq.RQQueue`, as ``Task.enqueue`` does in a bot); the tasks
  of :mod:`bench.bots.jobs_tasks`.
- **plain RQ** rows: ``rq worker`` processes (``SimpleWorker``, or the forking ``Worker``),
  jobs queued with ``rq.Queue.enqueue`` (sync, as an aiogram handler of the RQ pattern calls
  it); the same bodies as plain functions (:mod:`bench.jobs_rq_plain`). A plain chaos job is
  queued with ``Retry(max=3)``: without it RQ fails an abandoned job instead of running it
  again. Its workers are ``SimpleWorker`` processes, one job slot each, as many as the RQ
  backend's slots (a forking worker killed by SIGKILL leaves its horse to finish the job).
- **Plain RQ's abandoned jobs** come back once their started-registry entry has expired (90 s:
  a 30 s monitoring interval + 60) and a worker runs its maintenance (at its start, then every
  10 minutes): the plain chaos row waits for them at most :func:`rq_wait` seconds after its
  last kill (kills stop once no job is queued), and says how many were not back.

``python -m bench.jobs_rq [--jobs N] [--out DIR]`` measures the bot's side alone instead:
``RQQueue.enqueue`` (redis.asyncio, one Lua script) against ``rq.Queue.enqueue`` in a thread
(``asyncio.to_thread``) and blocking the loop; it writes ``jobs-rq-enqueue.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from rq import Queue, Retry

from bench import jobs_rq_plain
from bench.bots import jobs_tasks
from bench.harness import LOGS
from bench.jobs import JobPlan, JobRow, Workers, chaos_figures, cpu_of, marks, worker_argv
from bench.jobs_embedded import CHAOS_CONCURRENCY, chaos_result, chaos_run, enqueue_all
from bench.jobs_rq_procs import (
    fresh_queue,
    redis_up,
    rq_worker_argv,
    sync_redis,
    until,
    workers_registered,
)
from tgrunner.jobs.backends.rq import RQQueue
from tgrunner.jobs.queue import use_queue
from tgrunner.testing import FakeTelegram

__all__ = ["ROWS", "goals", "main", "rq_wait"]

IDLE_SECONDS = 3.0
FORK_JOBS = 2000  # the forking worker's row runs at most this many jobs
OURS = "tgrunner RQQueue (redis.asyncio, one script; pipelined when at once)"


def rq_wait(plan: JobPlan) -> float:
    """Seconds the plain chaos row waits for RQ's abandoned jobs: 240 (60 with ``--quick``)."""
    return 240.0 if plan.chaos_jobs >= 1000 else 60.0


async def _count(client: aredis.Redis, key: str) -> int:
    return int(await client.zcard(key))


async def _drained(client: aredis.Redis, name: str, timeout: float) -> None:
    """Until no job is queued, scheduled or started and none owes its reply."""

    async def empty() -> bool:
        async with client.pipeline(transaction=False) as pipe:
            pipe.llen(f"rq:queue:{name}")
            for key in ("wip", "scheduled", "tgrunner:leases", "tgrunner:unreplied"):
                pipe.zcard(f"rq:{key}:{name}")
            return not any(await pipe.execute())

    await until(empty, timeout, every=0.01)


async def _throughput(
    plan: JobPlan,
    name: str,
    client: aredis.Redis,
    workers: Workers,
    enqueue: Callable[[], Awaitable[Any]],
) -> dict[str, Any]:
    cpu0 = cpu_of(workers.pids)
    own0 = time.process_time()
    began = time.perf_counter()
    await enqueue_all(plan.jobs, enqueue)
    queued = time.perf_counter() - began
    enqueue_cpu = time.process_time() - own0

    async def done() -> bool:
        return await _count(client, f"rq:finished:{name}") >= plan.jobs

    await until(done, 60 + plan.jobs / 20)
    seconds = time.perf_counter() - began
    cpu = cpu_of(workers.pids) - cpu0
    return {
        "jobs": plan.jobs,
        "seconds": round(seconds, 2),
        "jobs_per_s": round(plan.jobs / seconds),
        "worker_cpu_us": round(cpu / plan.jobs * 1e6),
        "enqueue_per_s": round(plan.jobs / queued),
        "enqueue_cpu_us": round(enqueue_cpu / plan.jobs * 1e6),
    }


async def throughput(plan: JobPlan, tg: FakeTelegram, *, concurrency: int) -> dict[str, Any]:
    async with fresh_queue(f"throughput-{concurrency}") as (name, url, client):
        queue = RQQueue(url)
        use_queue(queue)
        workers = Workers(LOGS / f"jobs-rq-throughput-{concurrency}.log")
        try:
            for _ in range(plan.workers):
                await workers.start(worker_argv(url, tg, "--concurrency", str(concurrency)))
            figures = await _throughput(plan, name, client, workers, jobs_tasks.noop.enqueue)
        finally:
            codes = await workers.stop()
            use_queue(None)
            await queue.close()
    note = f"{plan.workers} workers × concurrency {concurrency}"
    return {**figures, "exit_codes": codes, "note": note}


async def throughput_plain(
    plan: JobPlan, tg: FakeTelegram, *, kind: str, most: int | None = None
) -> dict[str, Any]:
    """Plain RQ's workers of ``kind``; at most ``most`` jobs (the forking worker's row: a
    fork per job is slow, and its rate is the same over fewer jobs)."""
    if most is not None and plan.jobs > most:
        plan = replace(plan, jobs=most)
    async with fresh_queue(f"throughput-{kind}") as (name, _, client):
        plain = Queue(name, connection=sync_redis())
        workers = Workers(LOGS / f"jobs-rq-plain-throughput-{kind}.log", ready=None)

        async def enqueue() -> None:
            plain.enqueue(jobs_rq_plain.noop)

        try:
            for _ in range(plan.workers):
                await workers.start(rq_worker_argv(name, f"rq.{kind}"))
            await workers_registered(client, name, plan.workers)
            figures = await _throughput(plan, name, client, workers, enqueue)
        finally:
            codes = await workers.stop()
    note = f"{plan.workers} × rq worker -w rq.{kind}, {plan.jobs:,} jobs"
    return {**figures, "exit_codes": codes, "note": note}


async def _deaths(client: aredis.Redis, ids: list[str]) -> int:
    async with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "tgrunner_deaths")
        return sum(int(v or 0) for v in await pipe.execute())


async def chaos(plan: JobPlan, tg: FakeTelegram) -> dict[str, Any]:
    async with fresh_queue("chaos") as (name, url, client):
        plan.scratch.mkdir(parents=True, exist_ok=True)
        started = plan.scratch / f"{name}.marks"
        queue = RQQueue(url)
        use_queue(queue)
        try:
            workers, asked, elapsed, codes = await chaos_run(
                plan, tg, url, log=LOGS / "jobs-rq-chaos.log", started=started,
                drained=lambda: _drained(client, name, timeout=600),
            )  # fmt: skip
        finally:
            use_queue(None)
        states = await queue.counts()
        deaths = await _deaths(client, list(asked))
        await queue.close()
    figures = chaos_figures(tg, asked, marks(started), workers.kills)
    return chaos_result(
        plan, elapsed, figures, deaths=deaths, states={k: v for k, v in states.items() if v},
        exit_codes=codes,
    )  # fmt: skip


async def chaos_plain(plan: JobPlan, tg: FakeTelegram) -> dict[str, Any]:
    slots = plan.workers * CHAOS_CONCURRENCY
    async with fresh_queue("chaos-plain") as (name, _, client):
        plan.scratch.mkdir(parents=True, exist_ok=True)
        started = plan.scratch / f"{name}.marks"
        env = {"BENCH_JOB_MARKS": str(started), "BENCH_TOKEN": tg.token,
               "BENCH_API_URL": tg.api_url}  # fmt: skip
        workers = Workers(LOGS / "jobs-rq-plain-chaos.log", ready=None, env=env)
        plain = Queue(name, connection=sync_redis())
        stop = asyncio.Event()
        killer: asyncio.Task[None] | None = None
        waited: float | None = None  # set when the abandoned jobs were not all back
        try:
            for _ in range(slots):
                await workers.start(rq_worker_argv(name, "rq.SimpleWorker"))
            await workers_registered(client, name, slots)
            user = tg.user("Chaos")
            asked: dict[str, int] = {}
            began = time.perf_counter()
            for i, seconds in enumerate(plan.durations()):
                message = user.send(f"job {i}")
                args = (seconds, f"done {i}", user.chat.id, message["message_id"])
                job = plain.enqueue(jobs_rq_plain.chaos_job, *args, retry=Retry(max=3))
                asked[job.id] = message["message_id"]
            killer = asyncio.create_task(workers.killer(plan.kill_every, stop))

            async def none_queued() -> bool:
                return int(await client.llen(f"rq:queue:{name}")) == 0

            await until(none_queued, 600, every=0.05)
            stop.set()
            await killer
            killer = None

            def replied() -> bool:
                return chaos_figures(tg, asked, {}, [])["lost"] == 0

            try:
                await tg.wait_for(replied, timeout=rq_wait(plan))
            except TimeoutError:
                waited = rq_wait(plan)
            elapsed = time.perf_counter() - began
        finally:
            stop.set()
            if killer is not None:
                await killer
            codes = await workers.stop()
    ended = time.time()
    starts = marks(started)
    figures = chaos_figures(tg, asked, starts, workers.kills)
    note = f"{slots} × rq worker -w rq.SimpleWorker, Retry(max=3)"
    if waited is not None:
        # A job whose last run was cut and that never started again waited at least until
        # now: the longest wait is then that lower bound.
        answered = _answered(tg, asked)
        cuts = [
            _cut_at(starts, job_id, workers.kills) for job_id in asked if job_id not in answered
        ]
        bounds = [ended - cut for cut in cuts if cut is not None]
        if bounds:
            figures["max_wait_s"] = round(max([*bounds, figures["max_wait_s"] or 0.0]), 1)
            figures["wait_is_lower_bound"] = True
        note += (f"; {figures['lost']} abandoned jobs not back {waited:g} s after the last "
                 "kill: their wait is a lower bound")  # fmt: skip
    return {
        "jobs": plan.chaos_jobs,
        "seconds": round(elapsed, 1),
        "jobs_per_s": round(plan.chaos_jobs / elapsed),
        **figures,
        "gave_up_after_s": waited,
        "exit_codes": codes,
        "note": note,
    }


def _answered(tg: FakeTelegram, asked: dict[str, int]) -> set[str]:
    """The jobs (of ``asked``: job id → message id) whose message got a reply."""
    replied = {(r.params.get("reply_parameters") or {}).get("message_id")
               for r in tg.calls("sendMessage") if r.ok}  # fmt: skip
    return {job_id for job_id, message_id in asked.items() if message_id in replied}


def _cut_at(
    starts: dict[str, list[tuple[int, float]]], job_id: str, kills: list[tuple[float, int]]
) -> float | None:
    """When the kill that cut the last run of ``job_id`` came, or None (none did)."""
    runs = starts.get(job_id)
    if not runs:
        return None
    pid, at = runs[-1]
    later = [k for k, victim in kills if victim == pid and k > at]
    return min(later) if later else None


async def _wake(
    plan: JobPlan, workers: Workers, started: Path, enqueue: Callable[[], Awaitable[str]]
) -> dict[str, Any]:
    await asyncio.sleep(1.0)  # past the start-up's own CPU
    cpu0 = cpu_of(workers.pids)
    await asyncio.sleep(IDLE_SECONDS)
    idle = (cpu_of(workers.pids) - cpu0) / IDLE_SECONDS
    queued_at: dict[str, float] = {}
    for _ in range(plan.wake_jobs):
        at = time.time()
        queued_at[await enqueue()] = at
        await asyncio.sleep(plan.wake_gap)

    async def all_started() -> bool:
        return set(queued_at) <= set(marks(started))

    await until(all_started, 60, every=0.01)
    starts = marks(started)
    waits = sorted((starts[job_id][0][1] - at) * 1000 for job_id, at in queued_at.items())
    return {
        "jobs": len(waits),
        "p50_ms": round(waits[len(waits) // 2], 2),
        "p99_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))], 2),
        "max_ms": round(waits[-1], 2),
        "idle_cpu_pct": round(idle * 100, 2),
    }


async def wake(plan: JobPlan, tg: FakeTelegram) -> dict[str, Any]:
    async with fresh_queue("wake") as (name, url, client):
        started = plan.scratch / f"{name}.marks"
        plan.scratch.mkdir(parents=True, exist_ok=True)
        queue = RQQueue(url)
        use_queue(queue)
        workers = Workers(LOGS / "jobs-rq-wake.log", env={"BENCH_JOB_MARKS": str(started)})

        async def enqueue() -> str:
            return (await jobs_tasks.marked_noop.enqueue()).id

        try:
            await workers.start(worker_argv(url, tg))
            await jobs_tasks.noop.enqueue()  # a warm-up: the worker imports the tasks
            await _drained(client, name, timeout=30)
            figures = await _wake(plan, workers, started, enqueue)
        finally:
            codes = await workers.stop()
            use_queue(None)
            await queue.close()
    return {**figures, "exit_codes": codes, "note": "BLMOVE NAME NAME, due timers"}


async def wake_plain(plan: JobPlan, tg: FakeTelegram) -> dict[str, Any]:
    async with fresh_queue("wake-plain") as (name, _, client):
        started = plan.scratch / f"{name}.marks"
        plan.scratch.mkdir(parents=True, exist_ok=True)
        workers = Workers(LOGS / "jobs-rq-plain-wake.log", ready=None,
                          env={"BENCH_JOB_MARKS": str(started)})  # fmt: skip
        plain = Queue(name, connection=sync_redis())

        async def enqueue() -> str:
            return plain.enqueue(jobs_rq_plain.marked_noop).id

        try:
            await workers.start(rq_worker_argv(name, "rq.SimpleWorker"))
            await workers_registered(client, name, 1)
            figures = await _wake(plan, workers, started, enqueue)
        finally:
            codes = await workers.stop()
    return {**figures, "exit_codes": codes, "note": "rq worker -w rq.SimpleWorker (BLMOVE)"}


def _skip_without_redis(
    run: Callable[[JobPlan, FakeTelegram], Awaitable[dict[str, Any]]],
) -> Callable[[JobPlan, FakeTelegram], Awaitable[dict[str, Any]]]:
    async def checked(plan: JobPlan, tg: FakeTelegram) -> dict[str, Any]:
        if not redis_up():
            return {"skipped": "Redis does not answer on 127.0.0.1:6379"}
        return await run(plan, tg)

    return checked


ROWS: tuple[JobRow, ...] = tuple(
    JobRow(key, label, backend, part, _skip_without_redis(run))
    for key, label, backend, part, run in (
        ("rq", "RQ backend, 2 workers × 1", "rq", "throughput",
         partial(throughput, concurrency=1)),
        ("rq-c8", "RQ backend, 2 workers × 8", "rq", "throughput",
         partial(throughput, concurrency=8)),
        ("rq-simple", "plain RQ, 2 SimpleWorkers", "rq-plain", "throughput",
         partial(throughput_plain, kind="SimpleWorker")),
        ("rq-fork", "plain RQ, 2 Workers (a fork per job)", "rq-plain", "throughput",
         partial(throughput_plain, kind="Worker", most=FORK_JOBS)),
        ("rq-chaos", "RQ backend, SIGKILL every 3 s", "rq", "chaos", chaos),
        ("rq-plain-chaos", "plain RQ, 20 SimpleWorkers, SIGKILL every 3 s", "rq-plain",
         "chaos", chaos_plain),
        ("rq-wake", "RQ backend, idle worker", "rq", "wake", wake),
        ("rq-plain-wake", "plain RQ, idle SimpleWorker", "rq-plain", "wake", wake_plain),
    )
)  # fmt: skip


def goals(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The issue's goals for the RQ backend, with whether each was met."""
    by = {r["row"]: r for r in results if "skipped" not in r}
    out: list[tuple[str, bool]] = []
    ours, simple, fork = by.get("rq"), by.get("rq-simple"), by.get("rq-fork")
    if ours and simple:
        ratio = ours["jobs_per_s"] / simple["jobs_per_s"]
        out.append((f"RQ backend: **{ours['jobs_per_s']:,} jobs/s**, {ratio:.2f}× plain RQ's "
                    f"SimpleWorker ({simple['jobs_per_s']:,}), the same no-op (goal: within "
                    "10 %, or faster)", ratio >= 0.9))  # fmt: skip
    if ours and fork:
        out.append((f"RQ backend ahead of RQ's forking Worker ({fork['jobs_per_s']:,} jobs/s)",
                    ours["jobs_per_s"] > fork["jobs_per_s"]))  # fmt: skip
    ch, plain = by.get("rq-chaos"), by.get("rq-plain-chaos")
    if ch:
        final = sum(v for k, v in ch["states"].items() if k in ("finished", "failed"))
        beside = ""
        if plain:
            most = plain["max_wait_s"]
            bound = "at least " if plain.get("wait_is_lower_bound") else "at most "
            beside = f"; plain RQ's abandoned jobs waited {bound}{most if most else '—'} s"
            if plain.get("gave_up_after_s"):
                beside += (f" ({plain['lost']} not back {plain['gave_up_after_s']:g} s after "
                           "the last kill: RQ takes them back 90 s after their worker's last "
                           "heartbeat, at a worker's maintenance, every 10 minutes)")  # fmt: skip
        out.append((f"RQ backend chaos: {ch['kills']} SIGKILLs, {ch['jobs']:,} jobs: {final:,} "
                    f"ended, **{ch['lost']} without a reply, {ch['duplicates']} duplicates** "
                    f"(bound: {ch['cut_runs']} runs cut by a kill); an abandoned job waited at "
                    f"most **{ch['max_wait_s']} s** (goal: every job one reply, back within "
                    f"10 s){beside}",
                    ch["lost"] == 0 and final == ch["jobs"]
                    and ch["duplicates"] <= ch["cut_runs"]
                    and (ch["max_wait_s"] or 0) <= 10))  # fmt: skip
    return out


# -- the bot's side alone: python -m bench.jobs_rq ----------------------------------------------


async def _timed(label: str, n: int, batch: int, one: Callable[[], Awaitable[Any]]) -> dict:
    began = time.perf_counter()
    for i in range(0, n, batch):
        await asyncio.gather(*(one() for _ in range(min(batch, n - i))))
    took = time.perf_counter() - began
    return {"label": label, "at_once": batch, "per_s": round(n / took), "us": round(took / n * 1e6)}


async def enqueue_micro(n: int) -> list[dict[str, Any]]:
    """Enqueues/s of each way of queueing from an event loop, one at a time and 50 at once."""
    async with fresh_queue("enqueue") as (name, url, _):
        queue = RQQueue(url)
        plain = Queue(name, connection=sync_redis())
        use_queue(queue)

        async def direct() -> None:
            plain.enqueue(jobs_rq_plain.noop)

        async def threaded() -> None:
            await asyncio.to_thread(plain.enqueue, jobs_rq_plain.noop)

        try:
            await _timed("warm-up", 100, 1, jobs_tasks.noop.enqueue)
            await _timed("warm-up", 100, 1, direct)
            out = []
            for batch in (1, 50):
                out.append(await _timed(OURS, n, batch, jobs_tasks.noop.enqueue))
                out.append(await _timed("rq Queue.enqueue in a thread", n, batch, threaded))
                if batch == 1:
                    out.append(await _timed("rq Queue.enqueue, blocking the loop", n, 1, direct))
            return out
        finally:
            use_queue(None)
            await queue.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.jobs_rq",
                                description="The RQ backend's bot side: enqueues/s.")  # fmt: skip
    p.add_argument("--jobs", type=int, default=2000, help="enqueues per way (2000)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    if not redis_up():
        print("Redis does not answer on 127.0.0.1:6379; start it first", file=sys.stderr)
        return 2
    rows = asyncio.run(enqueue_micro(args.jobs))
    lines = ["# The RQ backend's bot side: enqueues/s", "",
             f"{args.jobs:,} no-op jobs per way, from one event loop, Redis on loopback.", "",
             "| how | at once | enqueues/s | µs each |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['label']} | {r['at_once']} | {r['per_s']:,} | {r['us']} |" for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jobs-rq-enqueue.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
