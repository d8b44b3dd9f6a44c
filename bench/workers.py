"""``python -m bench --scenario workers``: worker processes, against grammY runner's.

Three parts, each row a bot in its own process polling FakeTelegram in this process:

- **cpu**: a CPU-bound echo (every handler spins 1 ms of its thread's CPU, then replies),
  ``--updates`` messages over ``--chats`` chats, queued at once: tgrunner native with
  ``--workers 1`` (the default: one process, no worker processes) and ``--workers 2``,
  aiogram on tgrunner with ``--workers 2``, and
  grammY runner ``run()`` + ``sequentialize`` (one thread), ``distribute`` over 2 worker
  threads, and ``distribute`` behind ``sequentialize``;
- **plain**: the plain echo with ``--workers 2`` (and ``--workers 1``, for reference): what
  the supervisor costs per update, beside what its workers cost;
- **chaos**: the plain echo with ``--workers 2`` at ``--rate`` updates/s for ``--seconds``,
  one ready worker SIGKILLed every ``--kill-every`` seconds (see :mod:`bench.chaos`).

Pinning: the harness (FakeTelegram + the load driver) stays on core 0, as in the peers
benchmark, but the bot and its workers may run on every core (they need both), so on a
2-core machine the harness takes its share of one of the bot's cores. ``--pin none`` leaves
the harness unpinned too. CPU is read from ``/proc`` for the bot's whole process tree (see
:func:`tree_cpu`). Results: ``workers.md``, ``workers.png`` and ``workers.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import chaos, workers_report
from bench.harness import (
    BENCH,
    LOGS,
    REPO,
    START_TIMEOUT,
    Row,
    RowFailed,
    _env,
    _stop,
    _tail,
    _tgrunner,
    _wait_polling,
    missing,
)
from bench.proctree import ALL_CPUS, tree_cpu, tree_rss_mb
from bench.report import pick_rows
from tgrunner.testing import FakeTelegram
from tgrunner.testing.load import LoadPlan, run_load

__all__ = ["WORKER_ROWS", "WorkerRow", "run", "run_row"]

WARM_CHAT = 9_000_000  # the first warm-up chat; the load's chats start at 10,000,000
WARM_CHATS = 20
WARM_MESSAGES = 400


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One bot of the workers scenario.

    - ``part``: ``cpu``, ``plain`` or ``chaos``.
    - ``workers``: worker processes (tgrunner) or threads (grammY) running handlers; 0 for
      a bot that handles updates in its main thread.
    - ``ready_line``: a log line the bot prints once its workers are ready (waited for).
    """

    key: str
    label: str
    part: str
    framework: str
    workers: int
    argv: Callable[[str, str], list[str]]
    ready_line: str | None = None

    @property
    def row(self) -> Row:
        return Row(self.key, self.label, self.framework, self.framework == "grammy", self.argv)


def _tg(target: str, workers: int) -> Callable[[str, str], list[str]]:
    # --workers 1 (the default) is one process, as without the flag: no worker processes.
    base = _tgrunner(target)
    return lambda url, token: [*base(url, token), "--workers", str(workers)]


def _grammy(mode: str, count: int = 2) -> Callable[[str, str], list[str]]:
    script = str(BENCH / "bots" / "grammy_cpu.cjs")
    return lambda url, token: ["node", script, mode, str(count)]


_CPU = "bench.bots.cpu_echo:router"
_PLAIN = "bench.bots.native_echo:router"
_READY = "worker processes ready"
WORKER_ROWS: tuple[WorkerRow, ...] = (
    WorkerRow(
        "tg-w1", "tgrunner native --workers 1 (one process)", "cpu", "tgrunner", 0, _tg(_CPU, 1)
    ),
    WorkerRow("tg-w2", "tgrunner native --workers 2", "cpu", "tgrunner", 2, _tg(_CPU, 2), _READY),
    WorkerRow(
        "tg-aiogram-w2",
        "tgrunner + aiogram --workers 2",
        "cpu",
        "aiogram",
        2,
        _tg("bench.bots.aiogram_cpu:dp", 2),
        _READY,
    ),
    WorkerRow("grammy-seq", "grammY run() + sequentialize", "cpu", "grammy", 0, _grammy("seq")),
    WorkerRow(
        "grammy-distribute",
        "grammY run() + distribute, 2 threads",
        "cpu",
        "grammy",
        2,
        _grammy("distribute"),
    ),
    WorkerRow(
        "grammy-distribute-seq",
        "grammY run() + sequentialize + distribute, 2 threads",
        "cpu",
        "grammy",
        2,
        _grammy("distribute-seq"),
    ),
    WorkerRow(
        "plain-w1",
        "plain echo, tgrunner --workers 1 (one process)",
        "plain",
        "tgrunner",
        0,
        _tg(_PLAIN, 1),
    ),
    WorkerRow(
        "plain-w2",
        "plain echo, tgrunner --workers 2",
        "plain",
        "tgrunner",
        2,
        _tg(_PLAIN, 2),
        _READY,
    ),
    WorkerRow(
        "plain-w2-strict",
        "plain echo, tgrunner --workers 2 --no-journal",
        "plain",
        "tgrunner",
        2,
        lambda url, token: [*_tgrunner(_PLAIN, strict=True)(url, token), "--workers", "2"],
        _READY,
    ),
    WorkerRow(
        "chaos-w2",
        "chaos: plain echo --workers 2, SIGKILL a worker",
        "chaos",
        "tgrunner",
        2,
        _tg(_PLAIN, 2),
        _READY,
    ),
)


def _unpin() -> None:
    os.sched_setaffinity(0, ALL_CPUS)


# -- one row ------------------------------------------------------------------------------------


async def _wait_line(log: Path, line: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while line not in log.read_text(errors="replace"):  # noqa: ASYNC240 (a small local file)
        if proc.returncode is not None:
            raise RowFailed(f"the bot exited with {proc.returncode} before ready: {_tail(log)}")
        if time.monotonic() > deadline:
            raise RowFailed(f"no {line!r} within {START_TIMEOUT:g} s: {_tail(log)}")
        await asyncio.sleep(0.05)  # polling a log file: nothing to await on


async def _warm_up(tg: FakeTelegram) -> None:
    """:data:`WARM_MESSAGES` messages over :data:`WARM_CHATS` chats of their own before the
    measure: grammY's ``distribute`` starts its worker threads at the first update (tgrunner's
    workers are ready before it polls), and Node's JIT needs a few hundred calls of a function
    to compile it; the replies to them are not counted."""
    for c in range(WARM_CHATS):
        chat_id = WARM_CHAT + c
        user = {"id": chat_id, "is_bot": False, "first_name": "Warm"}
        chat = {"id": chat_id, "type": "private", "first_name": "Warm"}
        tg.state.register_chat(chat)
        for i in range(WARM_MESSAGES // WARM_CHATS):
            tg.state.push_update(
                "message",
                {
                    "message_id": tg.state.next_message_id(chat_id),
                    "from": user,
                    "chat": chat,
                    "date": tg.state.now(),
                    "text": f"warm-{i}",
                },
            )
    for c in range(WARM_CHATS):
        await tg.wait_for_replies(WARM_CHAT + c, WARM_MESSAGES // WARM_CHATS, timeout=START_TIMEOUT)


def _per_update(start: float, end: float, handled: int) -> float:
    return round((end - start) / handled * 1e6, 1)


async def run_row(
    row: WorkerRow, plan: LoadPlan, *, kill_every: float = 0.0, seed: int = 0
) -> dict[str, Any]:
    """Run ``row`` under ``plan`` and return its measures (``skipped``: why it could not).
    With ``kill_every`` > 0 a ready worker is SIGKILLed that often (:mod:`bench.chaos`)."""
    result: dict[str, Any] = {
        "row": row.key,
        "label": row.label,
        "part": row.part,
        "framework": row.framework,
        "workers": row.workers,
        "note": "",
    }
    reason = missing(row.row)
    if reason:
        return {**result, "skipped": reason}
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"workers-{row.key}.log"
    killer: chaos.Killer | None = None
    async with FakeTelegram() as tg:
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *row.argv(tg.api_url, tg.token),
                cwd=REPO,
                env=_env(tg.api_url, tg.token),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_unpin,  # the harness may be pinned to core 0: the bot is not
            )
        try:
            try:
                await _wait_polling(tg, proc, log)
                if row.ready_line:
                    await _wait_line(log, row.ready_line, proc)
                await _warm_up(tg)
            except (RowFailed, TimeoutError) as exc:
                return {**result, "skipped": str(exc) or f"no warm-up reply: {_tail(log)}"}
            gc.collect()
            gc.freeze()
            cpu0 = tree_cpu(proc.pid)
            own0, wall0, unix0 = time.process_time(), time.monotonic(), time.time()
            load = asyncio.ensure_future(run_load(tg, plan))
            if kill_every > 0:
                killer = chaos.Killer(proc.pid, log, kill_every, seed=seed)
                await killer.run_until(load)
            report = await load
            cpu1 = tree_cpu(proc.pid)
            wall = time.monotonic() - wall0
            own = time.process_time() - own0
            rss = tree_rss_mb(proc.pid)
            alive = proc.returncode is None
            replies = chaos.reply_times(tg, unix0)
            polls = sum(1 for r in tg.requests if r.method == "getUpdates" and r.time >= unix0)
        finally:
            code, killed = await _stop(proc)
    handled = max(report.replied, 1)
    result.update(report.as_dict())
    if cpu0 is not None and cpu1 is not None:
        result.update(
            cpu_us=_per_update(cpu0.tree, cpu1.tree, handled),
            supervisor_us=_per_update(cpu0.own, cpu1.own, handled),
            main_thread_us=_per_update(cpu0.main_thread, cpu1.main_thread, handled),
            cores_busy=round((cpu1.tree - cpu0.tree) / wall, 2),
        )
        own_part = "main_thread_us" if row.framework == "grammy" else "supervisor_us"
        result["workers_us"] = round(result["cpu_us"] - result[own_part], 1) if row.workers else 0
    result.update(
        rate=plan.rate,
        get_updates=polls,
        rss_mb=rss,
        harness_us=_per_update(0.0, own, handled),
        harness_cpu_share=round(own / wall, 2),
    )
    if killer is not None:
        result["chaos"] = chaos.analyse(killer, log, replies, row.workers, unix0)
    result["timeline"] = chaos.timeline(replies, unix0)
    notes = []
    if report.lost:
        notes.append(f"{report.lost} unanswered when the load timed out ({plan.timeout:g} s)")
    if not alive:
        notes.append(f"the bot died during the run (exit {code}): {_tail(log)}")
    elif killed:
        notes.append("killed: still running after SIGTERM")
    elif code not in (0, -15):
        notes.append(f"exit code {code} after SIGTERM")
    result["note"] = "; ".join(notes)
    return result


# -- the scenario -------------------------------------------------------------------------------


def spin_check() -> dict[str, str]:
    """What one ``spin()`` really costs, in each runtime: 500 spins, process CPU over them."""
    py = (
        "import time; from bench.bots.spin import spin; t = time.process_time()\n"
        "for _ in range(500): spin()\n"
        "print(round((time.process_time() - t) / 500 * 1e3, 3))"
    )
    js = (
        f"const {{ spin }} = require({str(BENCH / 'bots' / 'spin.cjs')!r});"
        "const t = process.cpuUsage(); for (let i = 0; i < 500; i++) spin();"
        "const c = process.cpuUsage(t); console.log(((c.user + c.system) / 500 / 1000).toFixed(3));"
    )
    out = {}
    for name, cmd in (("python", [sys.executable, "-c", py]), ("node", ["node", "-e", js])):
        try:
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
            out[name] = f"{done.stdout.strip()} ms" if done.returncode == 0 else "failed"
        except (OSError, subprocess.TimeoutExpired):
            out[name] = "unavailable"
    return out


def plans(args: argparse.Namespace) -> dict[str, LoadPlan]:
    """The load of each part: cpu and plain queued at once, chaos at ``--rate``."""
    updates = args.updates or (2000 if args.quick else 20_000)
    chats = args.chats or (200 if args.quick else 1000)
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    backlog = LoadPlan(chats=chats, updates=updates, timeout=args.timeout or 30 + updates / 50)
    paced = LoadPlan(
        chats=chats,
        updates=max(1, round(args.rate * seconds)),
        rate=args.rate,
        timeout=args.timeout or seconds + 30,
    )
    return {"cpu": backlog, "plain": backlog, "chaos": paced}


def describe(plan: LoadPlan) -> str:
    offered = "all queued at once" if plan.rate <= 0 else f"offered at {plan.rate:,.0f}/s"
    return (
        f"{plan.updates:,} messages over {plan.chats:,} chats ({plan.spread} spread), {offered}, "
        f"no API latency; a row that cannot keep up stops at {plan.timeout:g} s."
    )


def _line(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"  skipped: {r['skipped']}"
    own = r.get("main_thread_us" if r["framework"] == "grammy" else "supervisor_us") or 0
    text = (
        f"  {r['throughput']:>8,.0f} updates/s  CPU {r.get('cpu_us') or 0:,.0f} µs/update "
        f"(own {own:,.1f}, workers {r.get('workers_us') or 0:,.0f})  "
        f"cores {r.get('cores_busy') or 0:.2f}  violations {r['violations']}  lost {r['lost']}  "
        f"duplicates {r['duplicates']}"
    )
    if "chaos" in r:
        text += f"  kills {len(r['chaos']['kills'])}"
    return text + (f"  ({r['note']})" if r["note"] else "")


async def _run_all(
    rows: list[WorkerRow], parts: dict[str, LoadPlan], kill_every: float
) -> list[dict[str, Any]]:
    results = []
    for row in rows:
        print(f"- [{row.part}] {row.label}", flush=True)
        try:
            every = kill_every if row.part == "chaos" else 0.0
            result = await run_row(row, parts[row.part], kill_every=every)
        except Exception as exc:  # one broken row must not cost the others
            result = {"row": row.key, "label": row.label, "part": row.part,
                      "framework": row.framework, "workers": row.workers, "note": "",
                      "skipped": f"the harness failed: {type(exc).__name__}: {exc}"}  # fmt: skip
        print(_line(result), flush=True)
        results.append(result)
    return results


def run(
    args: argparse.Namespace,
    argv: list[str],
    info: dict[str, str],
    *,
    pinned: bool,
    run_on: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run,
) -> int:
    """The workers scenario, from the parsed ``python -m bench`` arguments; ``pinned``: the
    harness is on core 0; ``run_on`` runs the harness's coroutine (on asyncio or uvloop)."""
    rows = pick_rows(WORKER_ROWS, args.rows)
    if rows is None:
        return 2
    parts = plans(args)
    info["pinning"] = (
        "FakeTelegram + load driver on core 0; the bot and its workers unpinned (every core)"
        if pinned
        else "nothing pinned: the harness, the bot and its workers on every core"
    )
    info["spin() cost, CPU ms per call"] = ", ".join(f"{k} {v}" for k, v in spin_check().items())
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    for part in dict.fromkeys(row.part for row in rows):
        print(f"{part}: {describe(parts[part])}", flush=True)
    results = run_on(_run_all(rows, parts, args.kill_every))
    info["load average at end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv)
    described = {p: describe(parts[p]) for p in parts}
    described["chaos"] += f" One ready worker SIGKILLed every {args.kill_every:g} s."
    workers_report.write(args.out, results, info, described, command)
    print(f"\nwrote {args.out / 'workers.md'}, workers.png and workers.json", flush=True)
    return 0
