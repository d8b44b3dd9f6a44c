"""``python -m bench --scenario offload``: 5 ms of CPU per update, in the handler or offloaded.

Two rows, each ``tgrunner run`` of an echo bot (:mod:`bench.bots.offload_echo`) in its own
process, polling FakeTelegram in this process; every update costs the same pure-Python loop,
calibrated here to about 5 ms of CPU:

- ``inline``: the loop runs in the handler, on the bot's event loop;
- ``offload``: the handler awaits ``offload(burn, LOOPS)``, so the loop runs in the pool (its
  default size: one process per core).

Two parts per row:

- **backlog**: ``--updates`` messages (default 2,000) over ``--chats`` chats (default 200),
  queued at once: throughput;
- **paced**: :data:`PACED_RATE` updates/s (half of what one core can do at 5 ms each) for
  ``--seconds`` (default 10): reply latency when neither bot is overloaded.

Both parts measure the bot's event-loop lag: a ticker in the bot sleeps 5 ms at a time and
records how late it wakes (p50, p99, max), from the end of the warm-up to the last reply; and
CPU per update from ``/proc`` (the bot's whole process tree, and its event-loop thread).
The harness is pinned to core 0 (as elsewhere), the bot and its pool are not pinned.
Results: ``offload.md``, ``offload.png``, ``offload.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bench import offload_report
from bench.bots.offload_echo import CONTROL_CHAT
from bench.harness import LOGS, REPO, RowFailed, _env, _stop, _tail, _tgrunner, _wait_polling
from bench.proctree import ALL_CPUS, tree_cpu, tree_rss_mb
from bench.report import pick_rows
from tgrunner.testing import FakeTelegram
from tgrunner.testing.load import LoadPlan, run_load

__all__ = ["OFFLOAD_ROWS", "PACED_RATE", "TARGET_MS", "OffloadRow", "calibrate", "run"]

TARGET_MS = 5.0
"""CPU each update costs, in ms (what the loop is calibrated to)."""
PACED_RATE = 100.0
"""Updates/s offered in the paced part: half of one core at 5 ms per update."""
WARM_CHAT = 9_000_000
WARM_MESSAGES = 40


@dataclass(frozen=True, slots=True)
class OffloadRow:
    """One bot of the offload scenario: ``target`` is its ``tgrunner run`` import string."""

    key: str
    label: str
    target: str


OFFLOAD_ROWS: tuple[OffloadRow, ...] = (
    OffloadRow("inline", "inline: 5 ms loop in the handler", "bench.bots.offload_echo:inline"),
    OffloadRow("offload", "offload(): 5 ms loop in the pool", "bench.bots.offload_echo:offloaded"),
)

_CALIBRATE = """
import json, sys, time
from bench.bots.offload_echo import burn
probe = 20_000
burn(probe)
costs = []
for _ in range(7):
    t = time.thread_time(); burn(probe); costs.append(time.thread_time() - t)
loops = max(1, round(probe * float(sys.argv[1]) / 1000 / sorted(costs)[3]))
check = []
for _ in range(60):
    t = time.thread_time(); burn(loops); check.append(time.thread_time() - t)
check.sort()
print(json.dumps({"loops": loops, "ms": round(check[30] * 1000, 3)}))
"""


def calibrate(target_ms: float = TARGET_MS) -> dict[str, Any]:
    """``{"loops", "ms"}``: the loop count whose CPU cost is about ``target_ms``, and its
    median cost measured over 60 runs, in a fresh interpreter as the bots are."""
    done = subprocess.run(
        [sys.executable, "-c", _CALIBRATE, str(target_ms)],
        cwd=REPO,
        env=_env("", ""),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _unpin() -> None:
    os.sched_setaffinity(0, ALL_CPUS)


def _push(tg: FakeTelegram, chat_id: int, text: str) -> None:
    user = {"id": chat_id, "is_bot": False, "first_name": "Bench"}
    chat = {"id": chat_id, "type": "private", "first_name": "Bench"}
    tg.state.register_chat(chat)
    tg.state.push_update(
        "message",
        {"message_id": tg.state.next_message_id(chat_id), "from": user, "chat": chat,
         "date": tg.state.now(), "text": text},
    )  # fmt: skip


async def _control(tg: FakeTelegram, text: str) -> str:
    """Send ``text`` in the control chat; the bot's reply."""
    before = len(tg.state.replies(CONTROL_CHAT))
    _push(tg, CONTROL_CHAT, text)
    replies = await tg.wait_for_replies(CONTROL_CHAT, before + 1, timeout=60)
    return str(replies[-1]["text"])


async def _warm_up(tg: FakeTelegram) -> None:
    """Messages in chats of their own before the measure: the pool starts at the first
    offload, and each pool process imports the bot's module at its first call."""
    chats = 20
    for i in range(WARM_MESSAGES):
        _push(tg, WARM_CHAT + i % chats, f"warm-{i}")
    for c in range(chats):
        await tg.wait_for_replies(WARM_CHAT + c, WARM_MESSAGES // chats, timeout=60)


def _per_update(start: float, end: float, handled: int) -> float:
    return round((end - start) / handled * 1e6, 1)


async def run_row(row: OffloadRow, part: str, plan: LoadPlan, loops: int) -> dict[str, Any]:
    """Run ``row`` under ``plan``; its measures (``skipped``: why it could not run)."""
    result: dict[str, Any] = {"row": row.key, "label": row.label, "part": part, "note": ""}
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"offload-{row.key}-{part}.log"
    async with FakeTelegram() as tg:
        env = {**_env(tg.api_url, tg.token), "BENCH_BURN_LOOPS": str(loops)}
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *_tgrunner(row.target)(tg.api_url, tg.token),
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_unpin,
            )  # fmt: skip
        try:
            try:
                await _wait_polling(tg, proc, log)
                await _warm_up(tg)
                await _control(tg, "lag-reset")
            except (RowFailed, TimeoutError) as exc:
                return {**result, "skipped": str(exc) or f"no warm-up reply: {_tail(log)}"}
            gc.collect()
            gc.freeze()
            cpu0 = tree_cpu(proc.pid)
            report = await run_load(tg, plan)
            cpu1 = tree_cpu(proc.pid)
            lag = json.loads(await _control(tg, "lag"))
            rss = tree_rss_mb(proc.pid)
        finally:
            code, killed = await _stop(proc)
    handled = max(report.replied, 1)
    result.update(report.as_dict())
    result.update({f"lag_{k}": v for k, v in lag.items()})
    if cpu0 is not None and cpu1 is not None:
        result.update(
            cpu_us=_per_update(cpu0.tree, cpu1.tree, handled),
            loop_thread_us=_per_update(cpu0.main_thread, cpu1.main_thread, handled),
        )
    result.update(rate=plan.rate, rss_mb=rss)
    notes = []
    if report.lost:
        notes.append(f"{report.lost} unanswered when the load timed out ({plan.timeout:g} s)")
    if killed:
        notes.append("killed: still running after SIGTERM")
    elif code not in (0, -15):
        notes.append(f"exit code {code} after SIGTERM: {_tail(log)}")
    result["note"] = "; ".join(notes)
    return result


def plans(args: argparse.Namespace) -> dict[str, LoadPlan]:
    """The load of each part: the backlog, queued at once; paced at :data:`PACED_RATE`."""
    updates = args.updates or (300 if args.quick else 2000)
    chats = args.chats or (50 if args.quick else 200)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    backlog = LoadPlan(chats=chats, updates=updates, timeout=args.timeout or 30 + updates / 20)
    paced = LoadPlan(
        chats=chats,
        updates=max(1, round(PACED_RATE * seconds)),
        rate=PACED_RATE,
        timeout=args.timeout or seconds + 30,
    )
    return {"backlog": backlog, "paced": paced}


def describe(plan: LoadPlan) -> str:
    offered = "all queued at once" if plan.rate <= 0 else f"offered at {plan.rate:,.0f}/s"
    return (
        f"{plan.updates:,} messages over {plan.chats:,} chats ({plan.spread} spread), {offered}, "
        f"no API latency; a row that cannot keep up stops at {plan.timeout:g} s."
    )


def _line(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"  skipped: {r['skipped']}"
    return (
        f"  {r['throughput']:>7,.0f} updates/s  reply p50 {r['p50_ms']:,.1f} ms "
        f"p99 {r['p99_ms']:,.1f} ms  loop lag p50 {r['lag_p50_ms']} p99 {r['lag_p99_ms']} "
        f"max {r['lag_max_ms']} ms  CPU {r.get('cpu_us') or 0:,.0f} µs/update "
        f"(loop thread {r.get('loop_thread_us') or 0:,.0f})  lost {r['lost']}"
        + (f"  ({r['note']})" if r["note"] else "")
    )


async def _run_all(
    rows: list[OffloadRow], parts: dict[str, LoadPlan], loops: int
) -> list[dict[str, Any]]:
    results = []
    for part, plan in parts.items():
        print(f"\n{part}: {describe(plan)}", flush=True)
        for row in rows:
            print(f"- {row.label}", flush=True)
            try:
                result = await run_row(row, part, plan, loops)
            except Exception as exc:  # one broken row must not cost the others
                reason = f"the harness failed: {type(exc).__name__}: {exc}"
                result = {"row": row.key, "label": row.label, "part": part, "note": "",
                          "skipped": reason}  # fmt: skip
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
    """The offload scenario, from the parsed ``python -m bench`` arguments; ``pinned``: the
    harness is on core 0; ``run_on`` runs the harness's coroutine (on asyncio or uvloop)."""
    rows = pick_rows(OFFLOAD_ROWS, args.rows)
    if rows is None:
        return 2
    parts = plans(args)
    info["pinning"] = (
        "FakeTelegram + load driver on core 0; the bot and its pool unpinned (every core)"
        if pinned
        else "nothing pinned"
    )
    cost = calibrate()
    info["burn() per update"] = (
        f"{cost['loops']:,} turns of a Python loop, median {cost['ms']} ms of CPU (target "
        f"{TARGET_MS:g} ms)"
    )
    info["offload pool"] = f"{len(ALL_CPUS)} processes (the default: one per core)"
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    started = time.monotonic()
    results = run_on(_run_all(rows, parts, cost["loops"]))
    info["load average at end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    info["run took"] = f"{time.monotonic() - started:.0f} s"
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv)
    described = {p: describe(parts[p]) for p in parts}
    offload_report.write(args.out, results, info, described, command)
    print(f"\nwrote {args.out / 'offload.md'}, offload.png and offload.json", flush=True)
    return 0
