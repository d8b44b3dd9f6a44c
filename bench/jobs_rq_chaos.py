"""The chaos part of :mod:`bench.jobs_rq`: jobs of 50–500 ms with a reply each, a worker
SIGKILLed every few seconds, on tgrunner's RQ backend and on plain RQ.

- **Load**: ``jobs`` jobs (durations drawn with a fixed seed), all queued before the workers
  start; each replies ``done N`` to message N of one chat in FakeTelegram (this process).
- **Workers**: tgrunner: 2 job worker processes with ``--concurrency 8`` (a lease of 5 s,
  renewed every 2 s). RQ: 16 ``SimpleWorker`` processes (the job runs in the worker process,
  so killing it kills the job; a forking ``Worker`` killed by SIGKILL leaves its horse to
  finish), jobs enqueued with ``Retry(max=3)`` (without it RQ fails an abandoned job instead
  of running it again). 16 job slots either way.
- **Kills**: every ``kill_every`` seconds while jobs are still queued, one worker at random
  (seeded) is SIGKILLed, by PID, and a new one started in its place, as a supervisor would.
  The jobs it held (started, and last started by that PID: each job writes ``start ID TIME
  PID`` when it starts) are *abandoned*.
- **Abandoned wait**: from the kill to the job's next start. RQ finds an abandoned job when
  its started-registry entry has expired (90 s: a 30 s monitoring interval + 60) and a worker
  runs its maintenance (at its start, then every 10 minutes); its row waits ``rq_wait``
  seconds for them after the last kill, and counts those not back by then.
- **Replies**: per message, from FakeTelegram's record: missing (none) and duplicates.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from typing import Any

from rq import Queue, Retry

from bench.harness import SCRATCH
from bench.jobs_rq_plain import rq_chaos
from bench.jobs_rq_procs import REDIS, RQ, Worker, cleanup, fresh_name, sync_redis, tgrunner_worker
from bench.jobs_rq_tasks import tg_chaos
from tgrunner.jobs.backends.rq import RQQueue
from tgrunner.jobs.queue import use_queue
from tgrunner.testing import FakeTelegram

__all__ = ["markdown", "run"]

SEED = 7
LABELS = {"tgrunner": "tgrunner worker on RQ (2 × 8 slots)", "rq": "plain RQ, 16 SimpleWorkers"}


def _starts(marks: str) -> list[tuple[str, float, int]]:
    try:
        with open(marks) as f:
            text = f.read()
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            found.append((parts[1], float(parts[2]), int(parts[3])))
    return found


def _held_by(pid: int, marks: str) -> list[str]:
    """Jobs started, whose last start was in process ``pid``."""
    last: dict[str, int] = {}
    for job_id, _, by in _starts(marks):
        last[job_id] = by
    ids = [job_id for job_id, by in last.items() if by == pid]
    if not ids:
        return []
    r = sync_redis()
    with r.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hget(f"rq:job:{job_id}", "status")
        found = pipe.execute()
    return [job_id for job_id, status in zip(ids, found, strict=True) if status == b"started"]


def _replied(tg: FakeTelegram) -> Counter[int]:
    """Replies per message id."""
    return Counter(
        p.params["reply_parameters"]["message_id"] for p in tg.calls("sendMessage") if p.ok
    )


async def _scenario(kind: str, jobs: int, kill_every: float, wait: float) -> dict[str, Any]:
    rng = random.Random(SEED)
    durations = [rng.uniform(0.05, 0.5) for _ in range(jobs)]
    name = fresh_name(f"chaos-{kind}")
    url = f"{REDIS}?queue={name}"
    SCRATCH.mkdir(parents=True, exist_ok=True)
    marks = str(SCRATCH / f"{name}.marks")
    workers: list[Worker] = []
    queue = RQQueue(url) if kind == "tgrunner" else None
    async with FakeTelegram() as tg:
        chat = tg.user("Ann").chat.id
        if queue is not None:
            use_queue(queue)
            for n, seconds in enumerate(durations, 1):
                target = {"chat": {"id": chat}, "message_id": n}
                await tg_chaos.enqueue(seconds, n, marks, reply_to=target)
        else:
            plain = Queue(name, connection=sync_redis())
            for n, seconds in enumerate(durations, 1):
                plain.enqueue(rq_chaos, seconds, chat, n, marks, retry=Retry(max=3))

        def argv() -> list[str]:
            if kind == "tgrunner":
                return tgrunner_worker(url, tg.token, tg.api_url, 8)
            return [RQ, "worker", "-w", "rq.SimpleWorker", "--url", REDIS, name]

        env = {"BENCH_TOKEN": tg.token, "BENCH_API_URL": tg.api_url}
        ready = "ready" if kind == "tgrunner" else "Listening on"

        kills: list[tuple[float, int, list[str]]] = []

        async def start() -> Worker:
            return await Worker.start(argv(), name=f"{name}-{len(kills)}-{rng.random():.6f}",
                                      ready=ready, env=env)  # fmt: skip

        try:
            workers = [await start() for _ in range(2 if kind == "tgrunner" else 16)]
            for w in workers:
                await w.wait_ready()
            began = time.time()
            next_kill = began + kill_every
            r = sync_redis()
            last_kill = began
            while True:
                if len(_replied(tg)) >= jobs:
                    break
                now = time.time()
                queued = r.llen(f"rq:queue:{name}")
                if queued and now >= next_kill:
                    victim = rng.choice(workers)
                    held = _held_by(victim.pid, marks)
                    victim.kill()
                    await victim.proc.wait()
                    kills.append((time.time(), victim.pid, held))
                    last_kill = time.time()
                    workers.remove(victim)
                    workers.append(await start())
                    next_kill += kill_every
                elif not queued and now - last_kill > wait:
                    break
                await asyncio.sleep(0.05)
            ended = time.time()
        finally:
            use_queue(None)
            if queue is not None:
                await queue.close()
            for w in workers:
                await w.stop()
        sends = _replied(tg)
    starts = _starts(marks)
    waits: list[float] = []
    not_back = 0
    for at, _, held in kills:
        for job_id in held:
            later = [t for j, t, _ in starts if j == job_id and t > at]
            if later:
                waits.append(min(later) - at)
            else:
                not_back += 1
    cleanup(name)
    return {
        "key": f"chaos-{kind}",
        "label": LABELS[kind],
        "jobs": jobs,
        "replied": len(sends),
        "missing": jobs - len(sends),
        "duplicates": sum(c - 1 for c in sends.values()),
        "kills": len(kills),
        "abandoned": sum(len(h) for _, _, h in kills),
        "not_back": not_back,
        "max_wait_s": round(max(waits), 2) if waits else None,
        "mean_wait_s": round(statistics.fmean(waits), 2) if waits else None,
        "seconds": round(ended - began, 1),
        "waited_s": wait,
    }


async def run(jobs: int, kill_every: float, wait: float, kinds: list[str]) -> list[dict[str, Any]]:
    """The chaos rows ``kinds`` (``tgrunner``, ``rq``), one after the other."""
    rows = []
    for kind in kinds:
        print(f"chaos: {kind} …", file=sys.stderr)
        rows.append(await _scenario(kind, jobs, kill_every, wait))
    return rows


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        f"## Chaos: {rows[0]['jobs']:,} jobs of 50–500 ms, a worker SIGKILLed every 3 s",
        "",
        "| workers | kills | abandoned jobs | back: longest wait | mean wait | not back "
        "| replied | missing | duplicates | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        longest = "—" if r["max_wait_s"] is None else f"{r['max_wait_s']} s"
        mean = "—" if r["mean_wait_s"] is None else f"{r['mean_wait_s']} s"
        lines.append(
            f"| {r['label']} | {r['kills']} | {r['abandoned']} | {longest} | {mean} "
            f"| {r['not_back']} (after {r['waited_s']:g} s) | {r['replied']:,} | {r['missing']} "
            f"| {r['duplicates']} | {r['seconds']} |"
        )
    return lines
