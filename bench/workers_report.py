"""Write the workers scenario's results: ``workers.md`` (tables, method, figures, scaling),
``workers.png`` (a chart) and ``workers.json`` (the raw figures)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.chaos import BIN
from bench.report import COLORS, header, rebuild_main

__all__ = ["figures", "write"]

TARGET_RATIO = 1.7
TARGET_SUPERVISOR_US = 15.0
TARGET_DETECT_MS = 500.0
TARGET_SERVE_MS = 2000.0
TITLES = {
    "cpu": "CPU-bound echo: every handler spins 1 ms of CPU, then replies",
    "plain": "Plain echo: what the supervisor costs per update",
    "chaos": "Chaos: a ready worker SIGKILLed every few seconds",
}
METHOD = """\
- **The handler's 1 ms.** Every CPU-bound handler, in every runtime, spins until its own
  thread has used 1 ms of CPU, then replies: Python reads the thread's CPU clock
  (`time.thread_time()`, `bench/bots/spin.py`); Node 20 has no per-thread CPU clock
  (`process.cpuUsage()` counts all threads of the process), so `bench/bots/spin.cjs` adds up
  the steps of the monotonic clock between reads of a tight loop and leaves out any step over
  50 µs (time the thread was preempted). The header's *spin() cost* is one process's CPU over
  500 spins, measured at the start of this run.
- **Pinning.** On this 2-core machine the bot and its workers need both cores, so they are
  not pinned; the harness (FakeTelegram and the load driver) stays on core 0 as in the peers
  benchmark (unless `--pin none`), on uvloop (unless `--loop asyncio`), the lighter loop.
  The harness still takes its share of a core the bot's workers also want: its CPU per
  update is the *harness µs* figure below, and with `--workers 2` it comes out of the same
  two cores. A machine whose load generator (Telegram) is elsewhere gives `--workers 2` that
  share back; the figures below give the ratio the bot's own CPU per update allows.
- **Warm-up.** Before the measure, 400 messages over 20 chats of their own, all answered:
  grammY's `distribute` starts its threads at the first update (tgrunner's workers are ready
  before it polls), and Node's JIT compiles a function after a few hundred calls.
- **CPU.** From `/proc`, in clock ticks (10 ms), from the end of the warm-up to the last
  reply: *CPU µs/update* is the whole process tree (the bot process, every live
  descendant, and the children it already reaped, from `cutime`/`cstime`: a killed worker's
  CPU ends there), over the replies. *own µs* is the bot process alone: for tgrunner with
  `--workers` the supervisor (source, journal, scheduler, routing, IPC, completions); for a
  one-process row everything. For grammY it is the main thread (polling, `sequentialize`,
  `distribute`'s routing); its worker threads and Node's helper threads are the rest.
  *cores busy* is the tree's CPU over the wall time of the run. *Peak RSS* adds up the
  `VmHWM` of the live processes of the tree.
- **Order, loss, duplicates.** As in the peers benchmark: every message's text is a unique
  number; a *violation* is a reply that comes after the reply to a later message of the same
  chat; *lost*: never answered; *duplicates*: extra answers."""


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _by_key(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["row"]: r for r in results if "skipped" not in r}


def figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures: the --workers 2 / --workers 1 ratio, tgrunner against the best
    grammY row, the supervisor's µs per update, and the chaos totals (None: not measured)."""
    rows = _by_key(results)
    out: dict[str, Any] = {}
    w1, w2 = rows.get("tg-w1"), rows.get("tg-w2")
    if w1 and w2 and w1["throughput"]:
        out["ratio_w2_w1"] = round(w2["throughput"] / w1["throughput"], 2)
    if w1 and w2 and w1.get("cpu_us") and w2.get("cpu_us"):
        # What the bot's own CPU per update allows with both cores to itself (no harness).
        out["cpu_ratio_w2_w1"] = round(2 * w1["cpu_us"] / w2["cpu_us"], 2)
    grammy = [r for r in rows.values() if r["framework"] == "grammy" and r["part"] == "cpu"]
    if w2 and grammy:
        best = max(grammy, key=lambda r: r["throughput"])
        out["vs_best_grammy"] = (round(w2["throughput"] / best["throughput"], 2), best["label"])
    plain = rows.get("plain-w2")
    if plain:
        out["supervisor_us"] = plain.get("supervisor_us")
        out["plain_workers_us"] = plain.get("workers_us")
    if "chaos-w2" in rows:
        out["chaos"] = rows["chaos-w2"].get("chaos")
    return out


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


HEADER = (
    "| bot | handler processes / threads | updates/s | × tgrunner `--workers 1` | CPU µs/update "
    "| own µs | workers µs | cores busy | peak RSS MB | p50 ms | p99 ms | violations | lost "
    "| duplicates | harness µs | notes |"
)


def _table(rows: list[dict[str, Any]], base: float | None) -> list[str]:
    lines = [HEADER, "|" + "---|" * 16]
    for r in rows:
        if "skipped" in r:
            continue
        ratio = f"{r['throughput'] / base:.2f}×" if base else "—"
        lines.append(
            f"| {r['label']} | {r['workers'] or 'main thread'} | {_fmt(r['throughput'])} "
            f"| {ratio} | {_fmt(r.get('cpu_us'))} "
            f"| {_fmt(r.get('main_thread_us' if r['framework'] == 'grammy' else 'supervisor_us'), 1)} "  # noqa: E501
            f"| {_fmt(r.get('workers_us')) if r['workers'] else '—'} "
            f"| {_fmt(r.get('cores_busy'), 2)} | {_fmt(r['rss_mb'])} | {_fmt(r['p50_ms'], 1)} "
            f"| {_fmt(r['p99_ms'], 1)} | {r['violations']} | {r['lost']} | {r['duplicates']} "
            f"| {_fmt(r.get('harness_us'))} | {r['note']} |"
        )
    lines += [f"\n- Skipped: **{r['label']}**: {r['skipped']}" for r in rows if "skipped" in r]
    return lines


def _cpu_figures(rows: dict[str, dict[str, Any]], fig: dict[str, Any]) -> list[str]:
    lines = []
    if "ratio_w2_w1" in fig:
        ratio = fig["ratio_w2_w1"]
        lines.append(
            f"- `--workers 2` / `--workers 1`: **{ratio:.2f}×** (target ≥ {TARGET_RATIO}×: "
            f"{_verdict(ratio >= TARGET_RATIO)})."
        )
    w2 = rows.get("tg-w2")
    if "cpu_ratio_w2_w1" in fig and w2:
        lines.append(
            f"- Without the harness on the same cores, the bot's CPU per update would allow "
            f"2 × {rows['tg-w1']['cpu_us']:,.0f} / {w2['cpu_us']:,.0f} = "
            f"**{fig['cpu_ratio_w2_w1']:.2f}×** (derived, not measured: two cores all the "
            f"bot's; the harness took {w2.get('harness_cpu_share') or 0:.0%} of a core during "
            "the `--workers 2` row)."
        )
    if w2 and w2.get("cores_busy") is not None:
        used = w2["cores_busy"] + (w2.get("harness_cpu_share") or 0)
        cores = os.cpu_count() or 2  # the harness may be pinned: not its affinity
        if used < 0.9 * cores:
            lines.append(
                f"- **The machine was not quiet**: during the `--workers 2` row the bot's tree "
                f"and the harness together used {used:.2f} of {cores} cores; other processes "
                "had the rest. Its updates/s, and the ratio, are floors, not a verdict; the "
                "CPU per update still holds."
            )
    if "vs_best_grammy" in fig:
        x, label = fig["vs_best_grammy"]
        lines.append(
            f"- tgrunner `--workers 2` over the fastest grammY row ({label}): **{x:.2f}×**."
        )
    order = ", ".join(
        f"{r['label']} {r['violations']:,}" for r in rows.values() if r["part"] == "cpu"
    )
    if order:
        lines.append(f"- Order violations: {order}.")
    return lines


def _chaos_lines(c: dict[str, Any], r: dict[str, Any]) -> list[str]:
    lines = [
        "| kill | at s | slot | pid | in flight | detected after ms | replacement ready after ms "
        "| its slot answered again after ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, k in enumerate(c["kills"], 1):
        lines.append(
            f"| {i} | {k['at_s']} | {_fmt(k['slot'])} | {k['pid']} | {_fmt(k['in_flight'])} "
            f"| {_fmt(k['detected_ms'], 1)} | {_fmt(k['ready_ms'], 1)} "
            f"| {_fmt(k['serving_ms'], 1)} |"
        )
    kills = len(c["kills"])
    dmax, smax = c["max_detected_ms"], c["max_serving_ms"]
    lines += [
        "",
        f"- Kills: {kills}; deaths the supervisor did not log: {c['undetected']}; moments with "
        f"no ready worker to kill: {c['missed']}.",
        f"- Lost: **{r['lost']}**, order violations: **{r['violations']}** (target 0 and 0: "
        f"{_verdict(r['lost'] == 0 and r['violations'] == 0)}).",
        f"- Duplicates: **{r['duplicates']}**, against {c['in_flight_total']} updates in flight "
        f"in the killed workers (from the supervisor's log line at each death): "
        f"{_verdict(r['duplicates'] <= c['in_flight_total'])}.",
    ]
    if dmax is not None:
        lines.append(
            f"- Slowest detection: **{dmax:.1f} ms** (target ≤ {TARGET_DETECT_MS:g} ms: "
            f"{_verdict(dmax <= TARGET_DETECT_MS and not c['undetected'])})."
        )
    if smax is not None:
        lines.append(
            f"- Slowest return to service (kill to the first reply in a chat of the dead "
            f"worker's slot): **{smax:.1f} ms** (target ≤ {TARGET_SERVE_MS:g} ms: "
            f"{_verdict(smax <= TARGET_SERVE_MS and not c['unserved'])})."
        )
    return lines


def _scaling(rows: dict[str, dict[str, Any]], fig: dict[str, Any]) -> list[str]:
    w2, plain = rows.get("tg-w2"), rows.get("plain-w2")
    if not w2 or not w2.get("workers_us") or not w2.get("supervisor_us"):
        return ["Not computed: the `--workers 2` CPU-bound row is missing."]
    hw, s = w2["workers_us"], max(w2["supervisor_us"], 0.1)
    pw = (plain or {}).get("workers_us") or None
    # The supervisor's ceiling: its cost per update where it is busiest (the plain echo, at
    # thousands of updates/s, batches as a saturated supervisor would), else the CPU row's.
    ps = max((plain or {}).get("supervisor_us") or s, 0.1)
    ceiling = 1e6 / ps
    lines = [
        f"Measured with `--workers 2` on the CPU-bound echo: the workers spend **{hw:,.0f} µs** "
        f"per update (the 1 ms spin, parsing, the reply), the supervisor **{s:,.1f} µs** (at "
        f"{w2['throughput']:,.0f} updates/s). With one worker per core and the supervisor "
        f"sharing those cores, N cores give about N × 10⁶ / ({hw:,.0f} + {s:,.1f}) updates/s: "
        f"**{hw / (hw + s):.1%}** of N workers that would each have a core to themselves, "
        f"until the supervisor, one event loop on one core, is saturated. Its ceiling is "
        f"10⁶ / {ps:,.1f} ≈ **{ceiling:,.0f} updates/s** "
        + (
            f"({ps:,.1f} µs per update is its cost in the plain echo, at "
            f"{plain['throughput']:,.0f} updates/s), "
            if plain and plain.get("supervisor_us")
            else ""
        )
        + f"reached with 1 ms handlers at N ≈ {ceiling * (hw + s) / 1e6:,.0f} cores.",
    ]
    if "ratio_w2_w1" in fig:
        lines.append(
            f"Measured here: `--workers 2` gives {fig['ratio_w2_w1']:.2f}× `--workers 1` (one "
            f"process; {fig['ratio_w2_w1'] / 2:.0%} per core), with the harness on the same two "
            f"cores ({w2.get('harness_us') or 0:,.0f} µs per update of FakeTelegram and the "
            "driver)."
        )
    table = [
        "",
        "| cores N (N workers) | CPU-bound echo, updates/s | × N workers alone "
        "| plain echo, updates/s |",
        "|---|---|---|---|",
    ]
    for n in (1, 2, 4, 8, 16, 32, 64):
        cpu = min(n * 1e6 / (hw + s), ceiling)
        eff = cpu / (n * 1e6 / hw)
        flat = _fmt(min(n * 1e6 / (pw + ps), ceiling)) if pw else "—"
        table.append(f"| {n} | {cpu:,.0f} | {eff:.2f} | {flat} |")
    lines += table
    lines += [
        "",
        "The model assumes the supervisor's cost per update does not grow with N (one more pipe "
        "per worker; batching makes it smaller at high rates, not larger) and that Telegram, "
        "not a local FakeTelegram, is on the other end. For 1 ms handlers the goal of 0.9 × N "
        f"holds while the supervisor's share stays under 10 %: s ≤ {hw / 9:,.0f} µs. For a "
        "plain echo the supervisor, not the workers, is the ceiling after a few cores "
        + (
            f"(plain echo: workers {pw:,.1f} µs, supervisor {ps:,.1f} µs per update)."
            if pw
            else "(the plain row was not run)."
        ),
        "Only N = 1 and N = 2 are measured: this machine has two cores.",
    ]
    return lines


def write_markdown(
    path: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    rows = _by_key(results)
    fig = figures(results)
    base = rows["tg-w1"]["throughput"] if "tg-w1" in rows else None
    title = "Worker processes: `tgrunner run --workers N` against grammY runner"
    lines = header(title, info, command)
    lines += ["## Method", "", METHOD, ""]
    for part in ("cpu", "plain", "chaos"):
        mine = [r for r in results if r["part"] == part]
        if not mine:
            continue
        lines += [f"## {TITLES[part]}", "", plans[part], ""]
        lines += _table(mine, base if part == "cpu" else None)
        lines.append("")
        if part == "cpu":
            lines += _cpu_figures({k: v for k, v in rows.items()}, fig)
        if part == "plain" and fig.get("supervisor_us") is not None:
            sup = fig["supervisor_us"]
            lines.append(
                f"- Supervisor CPU per update with `--workers 2`: **{sup:.1f} µs** (target "
                f"≤ {TARGET_SUPERVISOR_US:g} µs: {_verdict(sup <= TARGET_SUPERVISOR_US)}); its "
                f"workers: **{_fmt(fig['plain_workers_us'], 1)} µs** per update."
            )
            strict = rows.get("plain-w2-strict")
            if strict and strict.get("supervisor_us") is not None:
                lines.append(
                    f"- With strict offsets (`--no-journal`), the supervisor: "
                    f"**{strict['supervisor_us']:.1f} µs** per update: the difference is the "
                    "intake journal's share."
                )
        if part == "chaos" and fig.get("chaos"):
            lines += ["", *_chaos_lines(fig["chaos"], rows["chaos-w2"])]
        lines.append("")
    lines += ["## Scaling to N cores", "", *_scaling(rows, fig), ""]
    path.write_text("\n".join(lines) + "\n")


def _bars(ax: Any, rows: list[dict[str, Any]], title: str, stacked: bool) -> None:
    labels = [r["label"] for r in rows]
    y = range(len(rows))
    if stacked:
        own = [(r.get("main_thread_us") if r["framework"] == "grammy" else r.get("supervisor_us"))
               or 0 for r in rows]  # fmt: skip
        rest = [r.get("workers_us") or 0 for r in rows]
        ax.barh(y, own, color="#555555", label="own (supervisor / main thread)")
        bars = ax.barh(y, rest, left=own, color=[COLORS.get(r["framework"], "grey") for r in rows],
                       label="workers")  # fmt: skip
        text = [
            f"{(r.get('cpu_us') or 0):,.0f} (own {o:,.1f})" for r, o in zip(rows, own, strict=True)
        ]
        ax.bar_label(bars, labels=text, fontsize=7, padding=2)
        ax.legend(fontsize=7, loc="lower right")
    else:
        bars = ax.barh(y, [r["throughput"] for r in rows],
                       color=[COLORS.get(r["framework"], "grey") for r in rows])  # fmt: skip
        ax.bar_label(bars, labels=[f"{r['throughput']:,.0f}" + (f"  ({r['violations']:,} order "
                     "violations)" if r["violations"] else "") for r in rows], fontsize=7,
                     padding=2)  # fmt: skip
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    ax.margins(x=0.5)


def write_png(path: Path, results: list[dict[str, Any]], info: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if "skipped" not in r]
    cpu = [r for r in ok if r["part"] == "cpu"]
    plain = [r for r in ok if r["part"] == "plain"]
    chaos_rows = [r for r in ok if r["part"] == "chaos"]
    fig, axes = plt.subplots(2, 2, figsize=(17, 9.5))
    if cpu:
        _bars(axes[0][0], cpu, "CPU-bound echo (1 ms/handler): updates/s, higher is better", False)
        _bars(axes[0][1], cpu, "CPU-bound echo: CPU µs per update, whole process tree", True)
    if plain:
        _bars(axes[1][0], plain, "plain echo: CPU µs per update (own = supervisor)", True)
        axes[1][0].axvline(TARGET_SUPERVISOR_US, color="red", linestyle="--", linewidth=1,
                           label=f"supervisor target {TARGET_SUPERVISOR_US:g} µs")  # fmt: skip
        axes[1][0].legend(fontsize=7, loc="lower right")
    ax = axes[1][1]
    if chaos_rows:
        r = chaos_rows[0]
        series = [n / BIN for n in r.get("timeline", [])]
        ax.plot([i * BIN for i in range(len(series))], series, color=COLORS["tgrunner"],
                linewidth=1)  # fmt: skip
        for i, k in enumerate(r.get("chaos", {}).get("kills", [])):
            ax.axvline(k["at_s"], color="red", linestyle="--", linewidth=1,
                       label="SIGKILL" if i == 0 else None)  # fmt: skip
        if r.get("rate"):
            ax.axhline(r["rate"], color="grey", linestyle=":", linewidth=1, label="offered")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel("seconds from the first message offered (red: a worker SIGKILLed)")
        ax.set_ylabel(f"replies/s (per {BIN:g} s)")
        ax.set_title(
            f"chaos, --workers 2: lost {r['lost']}, violations {r['violations']}, duplicates "
            f"{r['duplicates']}",
            fontsize=9,
        )
    else:
        ax.axis("off")
    fig.suptitle(f"tgrunner --workers against grammY runner — {info['cpu']}, {info['date']}",
                 fontsize=10)  # fmt: skip
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
    """Write workers.md, workers.png and workers.json into ``out``."""
    write_markdown(out / "workers.md", results, info, plans, command)
    write_png(out / "workers.png", results, info)
    payload = {"machine": info, "plans": plans, "command": command, "figures": figures(results),
               "results": results}  # fmt: skip
    (out / "workers.json").write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.workers_report DIR``: rebuild DIR's report from its workers.json."""
    return rebuild_main("workers", write, argv)


if __name__ == "__main__":
    sys.exit(main())
