"""Write the jobs scenario's results: ``jobs.md`` (goals, method, a table per part),
``jobs.png`` (a chart) and ``jobs.json`` (the raw figures). ``python -m bench.jobs_report
DIR`` rebuilds the first two from the third."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from bench.report import header, rebuild_main

__all__ = ["describe", "goals", "write"]

COLORS = {"embedded": "#2a7ab0", "rq": "#c0392b", "rq-plain": "#e08a1e"}
TITLES = {
    "throughput": "No-op jobs, enqueue to completion",
    "chaos": "Chaos: a job worker SIGKILLed every few seconds",
    "wake": "An idle worker: enqueue to start",
}
METHOD = """\
- **Processes.** FakeTelegram and the load (the bot's side: jobs queued one by one, as
  handlers do) run in the harness process; each job worker is a process of its own
  (`python -m tgrunner.jobs.process` for the tgrunner rows). Nothing is pinned: on a 2-core
  machine the harness and two workers share both cores.
- **Throughput.** The workers are started and ready; then the jobs are queued by 50
  concurrent producers (as the handlers of a busy bot queue them, each awaiting its own
  enqueue), and the clock runs from the first enqueue to the moment no job is left queued or
  started. *worker CPU
  µs/job* is the workers' CPU (user + system, `/proc`) over that time, per job; *enqueue
  µs/job* the harness's CPU for queueing them.
- **Chaos.** Jobs sleep 50–500 ms (seeded; a blocking sleep, in a thread), and each answers
  its own message. Every few seconds a worker, in turn, is SIGKILLed and started again at
  once. Each run marks its start (job id, pid, time) in a file. *Replies* come from
  FakeTelegram's record, matched by `reply_parameters.message_id`: *lost* is a job without
  one, *duplicates* the replies past a job's first. A *cut run* is a run whose worker was
  killed between its start and the job's next start: the bound of the duplicates (a reply is
  sent twice only when a kill falls between sending it and recording it). *Waited* is the
  time from the kill to that next start: the time an abandoned job waited.
- **Wake-up.** One idle worker (warmed up by one job); jobs queued 20 ms apart; each job's
  start mark minus the time before its enqueue began (so the enqueue's own cost is in it).
  *Idle CPU* is the worker's CPU over 3 s with no job, as a share of one core."""


def describe(plan: Any) -> dict[str, str]:
    """One line per part on what was run."""
    return {
        "throughput": f"{plan.jobs:,} no-op jobs, {plan.workers} workers.",
        "chaos": f"{plan.chaos_jobs:,} jobs of {plan.chaos_min * 1000:.0f}–"
        f"{plan.chaos_max * 1000:.0f} ms, {plan.workers} workers, one SIGKILLed every "
        f"{plan.kill_every:g} s and started again.",
        "wake": f"{plan.wake_jobs:,} jobs queued {plan.wake_gap * 1000:.0f} ms apart, 1 worker.",
    }


def goals(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The goals of every row module that states some (a ``goals(results)`` function)."""
    from bench.jobs import ROW_MODULES

    out: list[tuple[str, bool]] = []
    for name in ROW_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        found = getattr(importlib.import_module(name), "goals", None)
        if found is not None:
            out += found(results)
    return out


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str, int]]) -> list[str]:
    lines = ["| row | " + " | ".join(title for title, _, _ in columns) + " | notes |",
             "|" + "---|" * (len(columns) + 2)]  # fmt: skip
    for r in rows:
        if "skipped" in r:
            continue
        cells = [_fmt(r.get(key), digits) for _, key, digits in columns]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {r.get('note', '')} |")
    lines += [f"\n- Skipped: **{r['label']}**: {r['skipped']}" for r in rows if "skipped" in r]
    return lines


COLUMNS = {
    "throughput": [("jobs/s", "jobs_per_s", 0), ("× best", "ratio", 2),
                   ("worker CPU µs/job", "worker_cpu_us", 0), ("enqueue/s", "enqueue_per_s", 0),
                   ("enqueue µs/job", "enqueue_cpu_us", 0), ("s", "seconds", 2)],
    "chaos": [("jobs", "jobs", 0), ("s", "seconds", 1), ("jobs/s", "jobs_per_s", 0),
              ("kills", "kills", 0), ("replied", "replied", 0), ("lost", "lost", 0),
              ("duplicates", "duplicates", 0), ("cut runs (bound)", "cut_runs", 0),
              ("waited max s", "max_wait_s", 2), ("waited mean s", "mean_wait_s", 2)],
    "wake": [("p50 ms", "p50_ms", 2), ("p99 ms", "p99_ms", 2), ("max ms", "max_ms", 2),
             ("idle CPU % of a core", "idle_cpu_pct", 2)],
}  # fmt: skip


def _ratios(results: list[dict[str, Any]]) -> None:
    best = max((r["jobs_per_s"] for r in results
                if r["part"] == "throughput" and "skipped" not in r), default=0)  # fmt: skip
    for r in results:
        if r["part"] == "throughput" and "skipped" not in r and best:
            r["ratio"] = round(r["jobs_per_s"] / best, 2)


def write_markdown(
    path: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    _ratios(results)
    lines = header("Job queues: tgrunner's job workers, enqueue to completion and under SIGKILL",
                   info, command)  # fmt: skip
    lines += ["## Goals", ""]
    found = goals(results)
    lines += [f"- {text}: {'**met**' if ok else '**NOT met**'}." for text, ok in found]
    lines += ["", "## Method", "", METHOD, ""]
    for part, title in TITLES.items():
        mine = [r for r in results if r["part"] == part]
        if mine:
            lines += [f"## {title}", "", plans.get(part, ""), "", *_table(mine, COLUMNS[part]), ""]
    path.write_text("\n".join(lines) + "\n")


def write_png(path: Path, results: list[dict[str, Any]], info: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "skipped" not in r]
    panels = [
        ("throughput", "jobs_per_s", "no-op jobs/s, enqueue to completion (higher is better)",
         lambda r: f"{r['jobs_per_s']:,}/s, {r['worker_cpu_us']:,} µs CPU/job"),
        ("chaos", "max_wait_s", "chaos: longest wait of an abandoned job, s (lower is better)",
         lambda r: f"{r['max_wait_s']} s; lost {r['lost']}, dup {r['duplicates']} "
                   f"(bound {r['cut_runs']}), {r['kills']} kills"),
        ("wake", "p50_ms", "idle worker: enqueue to start p50, ms (lower is better)",
         lambda r: f"p50 {r['p50_ms']} / p99 {r['p99_ms']} ms, idle CPU {r['idle_cpu_pct']} %"),
    ]  # fmt: skip
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 9))
    for ax, (part, key, title, label) in zip(axes, panels, strict=True):
        rows = [r for r in ok if r["part"] == part]
        ax.set_title(title, fontsize=9)
        if not rows:
            continue
        y = range(len(rows))
        values = [float(r.get(key) or 0) for r in rows]
        bars = ax.barh(y, values, color=[COLORS.get(r["backend"], "grey") for r in rows])
        ax.bar_label(bars, labels=[label(r) for r in rows], fontsize=7, padding=2)
        ax.set_yticks(list(y), [r["label"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.margins(x=0.6)
    fig.suptitle(f"job queues — {info.get('cpu', '?')}, {info.get('date', '?')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    out: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    """Write jobs.md, jobs.png and jobs.json into ``out``."""
    write_markdown(out / "jobs.md", results, info, plans, command)
    write_png(out / "jobs.png", results, info)
    payload = {"machine": info, "plans": plans, "command": command,
               "goals": goals(results), "results": results}  # fmt: skip
    (out / "jobs.json").write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.jobs_report DIR``: rebuild DIR's report from its jobs.json."""
    return rebuild_main("jobs", write, argv)


if __name__ == "__main__":
    sys.exit(main())
