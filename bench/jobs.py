"""``python -m bench --scenario jobs``: job queues, enqueue to completion, and under SIGKILL.

Rows are a table of :class:`JobRow`, each a coroutine function that runs one measure and
returns its figures. Three parts:

- **throughput**: ``--updates`` no-op jobs (default 10,000; 2,000 with ``--quick``), queued
  one by one through the backend's queue while 2 job workers take them; jobs/s from the
  first enqueue to the last completion, and the workers' CPU per job.
- **chaos**: 2,000 jobs (300 with ``--quick``) of 50–500 ms (seeded), each answering its own
  message, while a job worker is SIGKILLed every ``--kill-every`` s (default 3) and started
  again at once: replies per job from FakeTelegram's record (lost, duplicates and their
  bound: the runs that were cut), and the longest time an abandoned job waited, from its
  worker's kill to its next start.
- **wake**: one idle worker, 100 jobs (30) queued 20 ms apart: the time from enqueue to the
  job's start, and the idle worker's CPU.

The embedded backend's rows are in :mod:`bench.jobs_embedded`. Another backend adds its rows
in a module of its own, listed in :data:`ROW_MODULES`, with a ``ROWS`` tuple of
:class:`JobRow` (and optionally ``goals(results)`` returning ``(text, met)`` pairs); a module
that is missing is skipped. Helpers for such rows: :class:`Workers` (worker processes,
started, killed and stopped by PID), :func:`chaos_figures` (the chaos part's measures from
FakeTelegram's record, the start marks and the kills), :func:`marks` and :func:`cpu_of`.

Results: ``jobs.md``, ``jobs.png`` and ``jobs.json`` (:mod:`bench.jobs_report`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import itertools
import os
import random
import shlex
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.harness import LOGS, REPO, SCRATCH
from bench.proctree import tree_cpu
from bench.report import pick_rows
from tgrunner.testing import FakeTelegram

__all__ = [
    "PARTS",
    "ROW_MODULES",
    "JobPlan",
    "JobRow",
    "Workers",
    "all_rows",
    "chaos_figures",
    "cpu_of",
    "marks",
    "run",
]

PARTS = ("throughput", "chaos", "wake")
ROW_MODULES = ("bench.jobs_embedded", "bench.jobs_rq")
"""Modules whose ``ROWS`` are this scenario's rows, in this order (missing ones skipped)."""
TASKS = "bench.bots.jobs_tasks"
READY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What the rows run: ``jobs`` (throughput), ``chaos_jobs`` of ``chaos_min``–``chaos_max``
    seconds with a kill every ``kill_every`` s, ``wake_jobs`` ``wake_gap`` s apart, on
    ``workers`` worker processes; ``seed`` draws the durations; ``scratch`` holds the files."""

    jobs: int = 10_000
    chaos_jobs: int = 2000
    chaos_min: float = 0.05
    chaos_max: float = 0.5
    kill_every: float = 3.0
    wake_jobs: int = 100
    wake_gap: float = 0.02
    workers: int = 2
    seed: int = 0
    scratch: Path = SCRATCH / "jobs"

    def durations(self) -> list[float]:
        """The chaos jobs' durations, the same in every row."""
        rng = random.Random(self.seed)
        return [rng.uniform(self.chaos_min, self.chaos_max) for _ in range(self.chaos_jobs)]


@dataclass(frozen=True, slots=True)
class JobRow:
    """One measure: ``key`` (for ``--rows``), ``label``, ``backend`` (for colours and goals),
    ``part`` (one of :data:`PARTS`), and ``run(plan, tg)`` returning its figures (a dict; a
    ``"note"`` is shown, a ``"skipped"`` reason replaces them)."""

    key: str
    label: str
    backend: str
    part: str
    run: Callable[[JobPlan, FakeTelegram], Awaitable[dict[str, Any]]]


def all_rows() -> list[JobRow]:
    """The rows of every module of :data:`ROW_MODULES` that is there."""
    rows: list[JobRow] = []
    for name in ROW_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        rows += importlib.import_module(name).ROWS
    return rows


def cpu_of(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes and their children, now (0 for gone)."""
    total = 0.0
    for pid in pids:
        found = tree_cpu(pid)
        total += found.tree if found is not None else 0.0
    return total


def marks(path: Path) -> dict[str, list[tuple[int, float]]]:
    """The start marks of ``path`` (:mod:`bench.bots.jobs_tasks`): job id → ``(pid, time)``
    of each run's start, in order."""
    found: dict[str, list[tuple[int, float]]] = {}
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        job_id, pid, at = line.split()
        found.setdefault(job_id, []).append((int(pid), float(at)))
    for runs in found.values():
        runs.sort(key=lambda run: run[1])
    return found


@dataclass
class _Proc:
    argv: list[str]
    proc: asyncio.subprocess.Process
    ready: asyncio.Event
    reader: asyncio.Task[None]


@dataclass
class Workers:
    """Worker processes of one row, each ``argv`` (a list per slot), their stderr appended to
    ``log``; ``ready`` is a line a worker prints once it takes jobs (None: at once).
    ``env`` is added to this process's environment. ``kills`` records ``(time, pid)`` of
    every :meth:`kill`."""

    log: Path
    ready: str | None = "ready:"
    env: dict[str, str] = field(default_factory=dict)
    kills: list[tuple[float, int]] = field(default_factory=list)
    _procs: list[_Proc] = field(default_factory=list)
    _out: TextIO | None = None

    @property
    def pids(self) -> list[int]:
        return [p.proc.pid for p in self._procs if p.proc.returncode is None]

    async def start(self, argv: list[str]) -> int:
        """Start one more worker; return its slot once it is ready."""
        self._procs.append(await self._spawn(argv))
        await self._wait_ready(len(self._procs) - 1)
        return len(self._procs) - 1

    async def _spawn(self, argv: list[str]) -> _Proc:
        LOGS.mkdir(parents=True, exist_ok=True)
        if self._out is None:
            self._out = self.log.open("a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        ready = asyncio.Event()
        if self.ready is None:
            ready.set()
        return _Proc(argv, proc, ready, asyncio.create_task(self._read(proc, ready)))

    async def _read(self, proc: asyncio.subprocess.Process, ready: asyncio.Event) -> None:
        assert proc.stderr is not None and self._out is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            self._out.write(line)
            if self.ready is not None and self.ready in line:
                ready.set()
        self._out.flush()

    async def _wait_ready(self, slot: int) -> None:
        p = self._procs[slot]
        async with asyncio.timeout(READY_TIMEOUT):
            await asyncio.wait(
                [asyncio.ensure_future(p.ready.wait()), p.reader], return_when="FIRST_COMPLETED"
            )
        if not p.ready.is_set():
            raise RuntimeError(f"a worker exited before it was ready; see {self.log}")

    async def kill(self, slot: int) -> None:
        """SIGKILL the worker of ``slot`` (by PID) and start it again; return once ready."""
        p = self._procs[slot]
        os.kill(p.proc.pid, signal.SIGKILL)
        self.kills.append((time.time(), p.proc.pid))
        await p.proc.wait()
        await p.reader
        self._procs[slot] = await self._spawn(p.argv)
        await self._wait_ready(slot)

    async def stop(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every worker and wait for it (SIGKILL after ``timeout``); the exit codes."""
        for p in self._procs:
            if p.proc.returncode is None:
                p.proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for p in self._procs:
            try:
                async with asyncio.timeout(timeout):
                    codes.append(await p.proc.wait())
            except TimeoutError:
                p.proc.kill()
                await p.proc.wait()
                codes.append(None)
            await p.reader
        if self._out is not None:
            self._out.close()
            self._out = None
        return codes

    async def killer(self, every: float, until: asyncio.Event) -> None:
        """Kill a worker every ``every`` s, in turn, until ``until`` is set."""
        slot = 0
        while not until.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await until.wait()
            if until.is_set():
                return
            await self.kill(slot % len(self._procs))
            slot += 1


def chaos_figures(
    tg: FakeTelegram,
    asked: dict[str, int],
    started: dict[str, list[tuple[int, float]]],
    kills: list[tuple[float, int]],
) -> dict[str, Any]:
    """The chaos part's measures. ``asked``: job id → the message its reply answers;
    ``started``: :func:`marks`; ``kills``: ``(time, pid)`` of each kill.

    - ``replied``, ``lost`` (no reply), ``duplicates`` (replies past the first);
    - ``cut_runs``: runs whose worker was killed between their start and the job's next
      start (a job's last run ended it): the bound of the duplicates;
    - ``max_wait_s`` / ``mean_wait_s``: from a kill to the next start of a job its victim
      was running.
    """
    per_message: dict[int, int] = {}
    for r in tg.calls("sendMessage"):
        if r.ok:
            target = (r.params.get("reply_parameters") or {}).get("message_id")
            per_message[target] = per_message.get(target, 0) + 1
    counts = [per_message.get(message_id, 0) for message_id in asked.values()]
    waits: list[float] = []
    cut = 0
    for runs in started.values():
        for (pid, at), (_, following) in itertools.pairwise(runs):
            death = next((k for k, victim in kills if victim == pid and at < k < following), None)
            if death is not None:
                cut += 1
                waits.append(following - death)
    return {
        "replied": sum(1 for c in counts if c),
        "lost": sum(1 for c in counts if c == 0),
        "duplicates": sum(c - 1 for c in counts if c > 1),
        "cut_runs": cut,
        "kills": len(kills),
        "max_wait_s": round(max(waits), 2) if waits else None,
        "mean_wait_s": round(sum(waits) / len(waits), 2) if waits else None,
    }


async def _run_all(rows: list[JobRow], plan: JobPlan) -> list[dict[str, Any]]:
    results = []
    for row in rows:
        print(f"- {row.part}: {row.label}", flush=True)
        base = {"row": row.key, "label": row.label, "backend": row.backend, "part": row.part}
        try:
            async with FakeTelegram(record=True) as tg:
                figures = await row.run(plan, tg)
        except Exception as exc:  # one broken row must not cost the others
            figures = {"skipped": f"the row failed: {type(exc).__name__}: {exc}"}
        result = {**base, "note": "", **figures}
        print("  " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
        results.append(result)
    return results


def plan_of(args: argparse.Namespace) -> JobPlan:
    """The plan from ``python -m bench`` arguments."""
    quick = args.quick
    return JobPlan(
        jobs=args.updates or (2000 if quick else 10_000),
        chaos_jobs=300 if quick else 2000,
        kill_every=args.kill_every or 3.0,
        wake_jobs=30 if quick else 100,
    )


def run(
    args: argparse.Namespace,
    argv: list[str],
    info: dict[str, str],
    *,
    run_on: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run,
) -> int:
    """The jobs scenario, from the parsed ``python -m bench`` arguments."""
    from bench import jobs_report

    rows = pick_rows(all_rows(), args.rows)
    if rows is None:
        return 2
    plan = plan_of(args)
    info["pinning"] = "none: the harness and the workers share every core"
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    results = run_on(_run_all(rows, plan))
    info["load average at end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv)
    jobs_report.write(args.out, results, info, jobs_report.describe(plan), command)
    print(f"\nwrote {args.out / 'jobs.md'}, jobs.png and jobs.json", flush=True)
    return 0


def worker_argv(jobs_url: str, tg: FakeTelegram, *extra: str) -> list[str]:
    """A tgrunner job worker process on ``jobs_url``, replying through ``tg``."""
    return [
        sys.executable, "-m", "tgrunner.jobs.process", "--jobs", jobs_url,
        "--api-url", tg.api_url, "--token", tg.token, "--path", str(REPO),
        "--log-level", "INFO", *extra,
    ]  # fmt: skip
