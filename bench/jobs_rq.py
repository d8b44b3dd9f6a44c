"""``python -m bench.jobs_rq``: the RQ backend beside plain RQ, on this machine's Redis.

- **throughput**: ``--jobs`` no-op jobs (2,000) put one after another by one producer while
  one worker process runs them; *jobs/s* is jobs over the time from the first enqueue to the
  last job finished (RQ's finished registry, looked at every 2 ms). Rows: tgrunner's job
  worker on the RQ backend with ``--concurrency 1`` and ``8``; plain RQ's ``SimpleWorker``;
  RQ's forking ``Worker``. The same no-op body everywhere
  (:mod:`bench.jobs_rq_tasks`); 50 jobs first, untimed, warm each worker up.
- **enqueue**: the bot's side alone, 2,000 enqueues: tgrunner's ``RQQueue`` (redis.asyncio,
  one Lua script a job), rq's ``Queue.enqueue`` in a thread (``asyncio.to_thread``), and
  directly (blocking the event loop); one at a time, and 50 at once.
- **chaos** (:mod:`bench.jobs_rq_chaos`): ``--chaos-jobs`` jobs of 50–500 ms with a reply
  each, a worker SIGKILLed every ``--kill-every`` seconds (3) while jobs are queued.

Writes ``jobs-rq.md`` and ``jobs-rq.json`` into ``--out`` (default bench/results). Redis
database 13 on 127.0.0.1:6379; only the keys of the bench's own queues are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from rq import Queue

from bench import jobs_rq_chaos
from bench.jobs_rq_plain import noop
from bench.jobs_rq_procs import (
    REDIS,
    RQ,
    Worker,
    cleanup,
    fresh_name,
    redis_up,
    sync_redis,
    tgrunner_worker,
)
from bench.jobs_rq_tasks import anoop_task, noop_task
from bench.proctree import tree_cpu
from bench.report import header, machine, pick_rows
from tgrunner.jobs.backends.rq import RQQueue
from tgrunner.jobs.queue import use_queue

__all__ = ["THROUGHPUT_ROWS", "main", "run"]

WARM = 50
TOKEN = "123456:bench-no-replies"  # no-op jobs send nothing
API_URL = "http://127.0.0.1:9"


@dataclass(frozen=True, slots=True)
class RQRow:
    """A throughput row: ``kind`` ``tgrunner`` (enqueued with ``RQQueue``) or ``rq``
    (``rq.Queue.enqueue``); ``argv(url, name)`` starts its worker; ``ready``: its ready line;
    ``job``: tgrunner's task (default the sync no-op)."""

    key: str
    label: str
    kind: str
    argv: Callable[[str, str], list[str]]
    ready: str
    job: Any = noop_task


def _rq_worker(worker_class: str) -> Callable[[str, str], list[str]]:
    return lambda url, name: [RQ, "worker", "-w", worker_class, "--url", REDIS, name]


THROUGHPUT_ROWS = (
    RQRow("tg-rq-c1", "tgrunner worker on RQ, --concurrency 1", "tgrunner",
          lambda url, name: tgrunner_worker(url, TOKEN, API_URL, 1), "ready"),
    RQRow("tg-rq-c8", "tgrunner worker on RQ, --concurrency 8", "tgrunner",
          lambda url, name: tgrunner_worker(url, TOKEN, API_URL, 8), "ready"),
    RQRow("tg-rq-c1-async", "tgrunner worker on RQ, --concurrency 1, the no-op async",
          "tgrunner", lambda url, name: tgrunner_worker(url, TOKEN, API_URL, 1), "ready",
          anoop_task),
    RQRow("rq-simple", "plain RQ, SimpleWorker", "rq", _rq_worker("rq.SimpleWorker"),
          "Listening on"),
    RQRow("rq-fork", "plain RQ, Worker (forks a horse per job)", "rq", _rq_worker("rq.Worker"),
          "Listening on"),
)  # fmt: skip


async def _finished(r: aredis.Redis, name: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await r.zcard(f"rq:finished:{name}") < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} jobs not finished within {timeout:g} s")
        await asyncio.sleep(0.002)


async def throughput(row: RQRow, jobs: int) -> dict[str, Any]:
    """One throughput row: its worker, ``WARM`` untimed jobs, then ``jobs`` timed ones."""
    name = fresh_name(row.key)
    url = f"{REDIS}?queue={name}"
    worker = await Worker.start(row.argv(url, name), name=name, ready=row.ready)
    r = aredis.Redis(host="127.0.0.1", port=6379, db=13)
    queue = RQQueue(url) if row.kind == "tgrunner" else None
    plain = Queue(name, connection=sync_redis())
    use_queue(queue)
    try:
        await worker.wait_ready()

        async def put(n: int) -> None:
            for _ in range(n):
                if queue is not None:
                    await row.job.enqueue()
                else:
                    plain.enqueue(noop)

        await put(WARM)
        await _finished(r, name, WARM, 60)
        cpu0 = tree_cpu(worker.pid)
        start = time.perf_counter()
        await put(jobs)
        enqueued = time.perf_counter()
        await _finished(r, name, WARM + jobs, 600)
        took = time.perf_counter() - start
        cpu1 = tree_cpu(worker.pid)
    finally:
        use_queue(None)
        if queue is not None:
            await queue.close()
        await r.aclose()
        await worker.stop()
        cleanup(name)
    cpu = (cpu1.tree - cpu0.tree) if cpu0 and cpu1 else None
    return {
        "key": row.key,
        "label": row.label,
        "jobs": jobs,
        "jobs_per_s": round(jobs / took),
        "enqueue_per_s": round(jobs / (enqueued - start)),
        "worker_cpu_us": None if cpu is None else round(cpu / jobs * 1e6),
    }


async def _timed(label: str, n: int, batch: int, one: Callable[[], Awaitable[Any]]) -> dict:
    start = time.perf_counter()
    for i in range(0, n, batch):
        await asyncio.gather(*(one() for _ in range(min(batch, n - i))))
    took = time.perf_counter() - start
    return {"label": label, "at_once": batch, "per_s": round(n / took), "us": round(took / n * 1e6)}


async def enqueue_micro(n: int) -> list[dict[str, Any]]:
    """The bot's side alone: enqueues/s of each way, one at a time and 50 at once."""
    name = fresh_name("enqueue")
    queue = RQQueue(f"{REDIS}?queue={name}")
    plain = Queue(name, connection=sync_redis())
    use_queue(queue)

    async def direct() -> None:
        plain.enqueue(noop)

    async def threaded() -> None:
        await asyncio.to_thread(plain.enqueue, noop)

    try:
        await _timed("warm", 100, 1, noop_task.enqueue)
        await _timed("warm", 100, 1, direct)
        out = []
        for batch in (1, 50):
            out.append(await _timed("tgrunner RQQueue (redis.asyncio, one script)", n, batch,
                                    noop_task.enqueue))  # fmt: skip
            out.append(await _timed("rq Queue.enqueue in a thread", n, batch, threaded))
            if batch == 1:
                out.append(await _timed("rq Queue.enqueue, blocking the loop", n, 1, direct))
        return out
    finally:
        use_queue(None)
        await queue.close()
        cleanup(name)


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    lines = header("The RQ backend beside plain RQ", data["machine"], data["command"])
    lines += [
        "## No-op jobs, enqueue to completion (one producer, one worker process)",
        "",
        "| worker | jobs | jobs/s | × SimpleWorker | enqueues/s during the run "
        "| worker CPU µs/job |",
        "|---|---|---|---|---|---|",
    ]
    base = next((r["jobs_per_s"] for r in data["throughput"] if r["key"] == "rq-simple"), None)
    for r in data["throughput"]:
        ratio = f"{r['jobs_per_s'] / base:.2f}×" if base else "—"
        lines.append(f"| {r['label']} | {r['jobs']:,} | {r['jobs_per_s']:,} | {ratio} "
                     f"| {r['enqueue_per_s']:,} | {r['worker_cpu_us'] or '—'} |")  # fmt: skip
    lines += ["", "## The bot's side: enqueues/s", "", "| how | at once | enqueues/s | µs each |",
              "|---|---|---|---|"]  # fmt: skip
    for e in data["enqueue"]:
        lines.append(f"| {e['label']} | {e['at_once']} | {e['per_s']:,} | {e['us']} |")
    lines += ["", *jobs_rq_chaos.markdown(data["chaos"])]
    path.write_text("\n".join(lines) + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.jobs_rq", description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=2000, help="no-op jobs per row (2000)")
    p.add_argument("--chaos-jobs", type=int, default=2000, help="chaos jobs per row (2000)")
    p.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills (3)")
    p.add_argument("--rq-wait", type=float, default=240.0,
                   help="seconds RQ's row waits for its abandoned jobs (240)")  # fmt: skip
    p.add_argument("--parts", nargs="*", default=["throughput", "enqueue", "chaos"],
                   choices=["throughput", "enqueue", "chaos"])  # fmt: skip
    keys = ", ".join(row.key for row in THROUGHPUT_ROWS)
    p.add_argument("--rows", nargs="*", help=f"throughput rows (default all: {keys})")
    p.add_argument("--chaos-rows", nargs="*", default=["tgrunner", "rq"],
                   choices=["tgrunner", "rq"], help="chaos rows (default both)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="500 jobs, 400 chaos jobs, 120 s wait")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    return p


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"throughput": [], "enqueue": [], "chaos": []}
    if "throughput" in args.parts:
        for row in args.rows:
            print(f"throughput: {row.label} …", file=sys.stderr)
            data["throughput"].append(await throughput(row, args.jobs))
    if "enqueue" in args.parts:
        print("enqueue …", file=sys.stderr)
        data["enqueue"] = await enqueue_micro(args.jobs)
    if "chaos" in args.parts:
        data["chaos"] = await jobs_rq_chaos.run(
            args.chaos_jobs, args.kill_every, args.rq_wait, args.chaos_rows
        )
    return data


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.jobs, args.chaos_jobs, args.rq_wait = 500, 400, 120.0
    args.rows = pick_rows(THROUGHPUT_ROWS, args.rows)
    if args.rows is None:
        return 2
    if not redis_up():
        print("Redis does not answer on 127.0.0.1:6379; start it first", file=sys.stderr)
        return 2
    info = machine(pinned=False)
    info["pinning"] = "none: Redis, the harness and the workers share the machine's cores"
    info["versions"] = f"{info['versions'].split(',')[0]}, rq {__import__('rq').__version__}"
    data = asyncio.run(run(args))
    data["machine"] = info
    data["command"] = "python -m bench.jobs_rq " + shlex.join(argv or sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jobs-rq.json").write_text(json.dumps(data, indent=1) + "\n")
    write_markdown(args.out / "jobs-rq.md", data)
    print(f"wrote {args.out / 'jobs-rq.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
