"""``python -m bench``: tgrunner against aiogram, python-telegram-bot and grammY, in one run.

Every row is an echo bot in its own process, polling FakeTelegram in this process. Scenarios:

- (a) zero API latency: ``--updates`` messages (default 20,000) over ``--chats`` chats (default
  1,000), all queued at once;
- (b) 50 ms latency on every method but getUpdates, ``--chats`` chats, ``--rate`` updates/s
  offered (default 2,000) for ``--seconds`` (default 10).

Writes ``peers.md``, ``peers.png`` and ``peers.json`` into ``--out`` (default bench/results).
``--scenario workers`` is the worker-process benchmark instead (:mod:`bench.workers`): it
writes ``workers.md``, ``workers.png`` and ``workers.json``.
``--scenario webhook`` is the webhook intake benchmark (:mod:`bench.webhook`): it writes
``webhook.md``, ``webhook.png`` and ``webhook.json``.
``--scenario offload`` is 5 ms of CPU per update, inline against ``offload()``
(:mod:`bench.offload`): it writes ``offload.md``, ``offload.png`` and ``offload.json``.
``--scenario jobs`` is the job queue benchmark (:mod:`bench.jobs`): it writes ``jobs.md``,
``jobs.png`` and ``jobs.json``.
``--scenario state`` is the state store on every backend against aiogram's FSM and PTB's
persistence (:mod:`bench.state`): it writes ``state.md``, ``state.png`` and ``state.json``.
``--scenario flood`` is outgoing flood control against PTB's ``AIORateLimiter``, on a
FakeTelegram enforcing Telegram's limits (:mod:`bench.flood`): it writes ``flood.md``,
``flood.png`` and ``flood.json``.
``--quick`` is a small run for development (2,000 updates over 200 chats; 2 s in (b)).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import flood, jobs, offload, report, state, webhook, workers
from bench.harness import BENCH, ROWS, SCRATCH, blank_result, missing, pin_harness, run_together
from tgrunner.testing.load import LoadPlan

NPM_PACKAGES = ("grammy@^1.46.0", "@grammyjs/runner@^2.0.3")
LATENCY_MS = 50.0


def _parser() -> argparse.ArgumentParser:
    keys = ", ".join(row.key for row in ROWS)
    worker_keys = ", ".join(row.key for row in workers.WORKER_ROWS)
    hook_keys = ", ".join(row.key for row in webhook.HOOK_ROWS)
    offload_keys = ", ".join(row.key for row in offload.OFFLOAD_ROWS)
    job_keys = ", ".join(row.key for row in jobs.all_rows())
    flood_keys = ", ".join(row.key for row in flood.FLOOD_ROWS)
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="tgrunner against aiogram, python-telegram-bot and grammY, in one run.",
    )
    p.add_argument(
        "--updates",
        type=int,
        help="messages in scenario (a) (default 20000; webhook: 10000; offload: 2000; "
        "state: calls per row, 2000)",
    )
    p.add_argument("--chats", type=int, help="simulated chats (default 1000; flood: echo-3's, 200)")
    p.add_argument(
        "--rate", type=float, default=2000.0, help="(b), webhook ack: updates/s offered (2000)"
    )
    p.add_argument(
        "--seconds",
        type=float,
        help="(b): seconds of offered load (default 10; webhook ack: 5; flood: per storm "
        "phase, 30)",
    )
    p.add_argument(
        "--scenario",
        choices=("a", "b", "all", "workers", "webhook", "offload", "jobs", "state", "flood"),
        default="all",
        help="a, b, or all (both; the default): the peers; workers: worker processes; "
        "webhook: webhook intake; offload: 5 ms of CPU per update, inline or offloaded; "
        "jobs: job queues; state: the state store's backends and bridges against aiogram's "
        "and PTB's; flood: outgoing flood control against PTB's AIORateLimiter",
    )
    p.add_argument(
        "--spread",
        choices=("random", "even"),
        default="random",
        help="how messages pick their chat: at random (default; two may meet in one chat, "
        "and order makes the second wait) or evenly, in turn",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        metavar="ROW",
        help=f"rows to run (default all): {keys}; with --scenario workers: {worker_keys}; "
        f"with --scenario webhook: {hook_keys}; with --scenario offload: {offload_keys}; "
        f"with --scenario jobs: {job_keys}; with --scenario flood: {flood_keys}; "
        f"with --scenario state: {', '.join((*state.BACKENDS, *state.PEERS))}",
    )
    p.add_argument(
        "--kill-every",
        type=float,
        help="workers, jobs: seconds between SIGKILLs of a worker in the chaos row (default 2; "
        "jobs: 3)",
    )
    p.add_argument(
        "--kills",
        type=int,
        help="webhook: SIGKILLs of the bot in the crash part (default 5; 3 with --quick)",
    )
    p.add_argument(
        "--pin",
        choices=("harness", "none"),
        default="harness",
        help="workers: pin the harness to core 0 (default; the bot is never pinned there) "
        "or nothing",
    )
    p.add_argument(
        "--timeout",
        type=float,
        help="seconds a row may take to answer everything (default: 30 + updates/100 "
        "in (a), seconds + 20 in (b); flood: echo-3's, 600)",
    )
    p.add_argument(
        "--side-by-side",
        action="store_true",
        help="(a), (b): run the rows two at a time, their bots taking turns on the bot's core "
        "every 0.1 s (the way to compare two rows within 1 %% on a host whose speed drifts; "
        "their latencies then mean nothing)",
    )
    p.add_argument("--quick", action="store_true", help="a small run, for development")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="output folder")
    p.add_argument("--no-install", action="store_true", help="do not npm install grammY")
    p.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        help="event loop of FakeTelegram and the load driver (default asyncio; uvloop for "
        "--scenario workers, where the harness shares the bot's cores)",
    )
    return p


def _plans(args: argparse.Namespace) -> dict[str, LoadPlan]:
    updates = args.updates or (2000 if args.quick else 20_000)
    chats = args.chats or (200 if args.quick else 1000)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    plans = {
        "a": LoadPlan(
            chats=chats,
            updates=updates,
            timeout=args.timeout or 30 + updates / 100,
            spread=args.spread,
        ),
        "b": LoadPlan(
            chats=chats,
            spread=args.spread,
            updates=max(1, round(args.rate * seconds)),
            rate=args.rate,
            latency_ms=LATENCY_MS,
            timeout=args.timeout or seconds + 20,
        ),
    }
    wanted = ("a", "b") if args.scenario == "all" else (args.scenario,)
    return {k: v for k, v in plans.items() if k in wanted}


def _describe(plan: LoadPlan) -> str:
    offered = "all queued at once" if plan.rate <= 0 else f"offered at {plan.rate:,.0f}/s"
    return (
        f"{plan.updates:,} messages over {plan.chats:,} chats ({plan.spread} spread), "
        f"{offered}; API latency "
        f"{plan.latency_ms:g} ms; a row that cannot keep up stops at {plan.timeout:g} s."
    )


def _install_grammy() -> None:
    """npm install grammY and its runner into bench/.scratch (gitignored), once."""
    if shutil.which("npm") is None:
        return
    SCRATCH.mkdir(parents=True, exist_ok=True)
    print(f"installing {' '.join(NPM_PACKAGES)} into {SCRATCH} …", flush=True)
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(SCRATCH), *NPM_PACKAGES],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"npm install failed; the grammY rows will be skipped:\n{done.stderr[-1500:]}")


def _line(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"  skipped: {r['skipped']}"
    return (
        f"  {r['throughput']:>9,.0f} updates/s  {r['cpu_us'] or 0:>7,.0f} µs CPU/update  "
        f"{r['rss_mb'] or 0:>5.0f} MB  p50 {r['p50_ms']:,.1f} ms  p99 {r['p99_ms']:,.1f} ms  "
        f"violations {r['violations']}  lost {r['lost']}  duplicates {r['duplicates']}"
        + (f"  ({r['note']})" if r["note"] else "")
    )


async def _run(
    rows: list[Any], plans: dict[str, LoadPlan], pinned: bool, side_by_side: bool
) -> list[dict[str, Any]]:
    results = []
    size = 2 if side_by_side else 1
    for scenario, plan in plans.items():
        print(f"\nscenario ({scenario}): {_describe(plan)}", flush=True)
        for start in range(0, len(rows), size):
            group = rows[start : start + size]
            print("- " + " | ".join(row.label for row in group), flush=True)
            try:
                done = await run_together(group, scenario, plan, pin=pinned)
            except Exception as exc:  # one broken row must not cost the others
                reason = f"the harness failed: {type(exc).__name__}: {exc}"
                done = [{**blank_result(row, scenario), "skipped": reason} for row in group]
            for result in done:
                if side_by_side:
                    result["together"] = start // size
                print(_line(result), flush=True)
            results.extend(done)
    return results


def _run_on(loop: str, main: Any) -> Any:
    # uvloop is offered to check that FakeTelegram's loop does not change a row's figures.
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.scenario == "workers":
        return _workers(args, argv if argv is not None else sys.argv[1:])
    if args.scenario == "webhook":
        return _webhook(args, argv if argv is not None else sys.argv[1:])
    if args.scenario == "offload":
        return _offload(args, argv if argv is not None else sys.argv[1:])
    if args.scenario == "jobs":
        return _jobs(args, argv if argv is not None else sys.argv[1:])
    if args.scenario == "state":
        return _state(args, argv if argv is not None else sys.argv[1:])
    if args.scenario == "flood":
        return _flood(args, argv if argv is not None else sys.argv[1:])
    known = {row.key: row for row in ROWS}
    unknown = [key for key in args.rows or () if key not in known]
    if unknown:
        _parser().error(f"unknown rows {unknown}; choose from {', '.join(known)}")
    rows = [known[key] for key in args.rows] if args.rows else list(ROWS)
    if args.side_by_side and len(rows) % 2:
        _parser().error("--side-by-side runs the rows two at a time: give an even number")
    wants_grammy = any(row.node and missing(row) for row in rows)
    if wants_grammy and not args.no_install and shutil.which("node"):
        _install_grammy()
    plans = _plans(args)
    pinned = pin_harness()
    info = report.machine(pinned=pinned)
    _harness_loop(args, info, default="asyncio")
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    results = _run_on(args.loop, _run(rows, plans, pinned, args.side_by_side))
    report.ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    described = {k: _describe(v) for k, v in plans.items()}
    report.write_markdown(args.out / "peers.md", results, info, described, command.strip())
    report.write_json(args.out / "peers.json", results, info)
    targets: dict[tuple[str, str], tuple[float, str]] = {
        ("a", "cpu_us"): (50.0, "tgrunner target 50 µs"),
        ("b", "p99_ms"): (80.0, "tgrunner target 80 ms"),
    }
    if "b" in plans:
        targets["b", "throughput"] = (args.rate, f"offered {args.rate:,.0f}/s")
    report.write_png(args.out / "peers.png", results, info, targets)
    print(f"\nwrote {args.out / 'peers.md'}, peers.png and peers.json", flush=True)
    return 0


def _harness_loop(args: argparse.Namespace, info: dict[str, str], *, default: str) -> None:
    """Settle ``args.loop`` (``default`` unless given; asyncio without uvloop) and say it, and
    a quick run, in ``info``."""
    args.loop = args.loop or default
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        args.loop = "asyncio"
    info["harness event loop"] = args.loop
    if args.quick:
        info["run"] = "**quick development run**: small counts, not the reference figures"


def _workers(args: argparse.Namespace, argv: list[str]) -> int:
    wanted = [r for r in workers.WORKER_ROWS if not args.rows or r.key in args.rows]
    grammy = any(r.row.node and missing(r.row) for r in wanted)
    if grammy and not args.no_install and shutil.which("node"):
        _install_grammy()
    args.kill_every = args.kill_every or 2.0
    pinned = pin_harness() if args.pin == "harness" else False
    info = report.machine(pinned=pinned)
    # The harness shares the workers' cores here: the lighter loop leaves them more.
    _harness_loop(args, info, default="uvloop")
    return workers.run(
        args, argv, info, pinned=pinned, run_on=lambda main: _run_on(args.loop, main)
    )


def _webhook(args: argparse.Namespace, argv: list[str]) -> int:
    pinned = pin_harness()
    info = report.machine(pinned=pinned)
    info["versions"] = info["versions"].split(", Node")[0]  # no grammY row here
    _harness_loop(args, info, default="asyncio")
    return webhook.run(
        args, argv, info, pinned=pinned, run_on=lambda main: _run_on(args.loop, main)
    )


def _offload(args: argparse.Namespace, argv: list[str]) -> int:
    pinned = pin_harness()
    info = report.machine(pinned=pinned)
    info["versions"] = info["versions"].split(", aiogram")[0]  # tgrunner alone here
    _harness_loop(args, info, default="asyncio")
    return offload.run(
        args, argv, info, pinned=pinned, run_on=lambda main: _run_on(args.loop, main)
    )


def _jobs(args: argparse.Namespace, argv: list[str]) -> int:
    info = report.machine(pinned=False)
    info["versions"] = info["versions"].split(", aiogram")[0]
    _harness_loop(args, info, default="asyncio")
    return jobs.run(args, argv, info, run_on=lambda main: _run_on(args.loop, main))


def _state(args: argparse.Namespace, argv: list[str]) -> int:
    info = report.machine(pinned=False)
    info["versions"] = info["versions"].split(", Node")[0]  # no grammY row here
    _harness_loop(args, info, default="asyncio")
    return state.run(args, argv, info, run_on=lambda main: _run_on(args.loop, main))


def _flood(args: argparse.Namespace, argv: list[str]) -> int:
    info = report.machine(pinned=False)
    info["versions"] = info["versions"].split(", Node")[0] + f", aiolimiter {flood.aiolimiter()}"
    _harness_loop(args, info, default="asyncio")
    return flood.run(args, argv, info, run_on=lambda main: _run_on(args.loop, main))


if __name__ == "__main__":
    sys.exit(main())
