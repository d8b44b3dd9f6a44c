"""Write the offload scenario's results: ``offload.md`` (tables, method, headline figures),
``offload.png`` (a chart) and ``offload.json`` (the raw figures)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import COLORS, header, rebuild_main

__all__ = ["figures", "write"]

TITLES = {
    "backlog": "Backlog: every message queued at once",
    "paced": "Paced: a steady rate both bots can sustain",
}
ROW_COLORS = {"inline": "#999999", "offload": COLORS["tgrunner"]}
METHOD = """\
- **The work.** Every update costs the same pure-Python loop (`burn()` in
  `bench/bots/offload_echo.py`), its number of turns calibrated at the start of the run to
  about 5 ms of CPU (the header gives the count and its measured median). The *inline* bot
  runs it in its handler, on the event loop; the *offload* bot awaits
  `offload(burn, LOOPS)`, which runs it in a pool process (the pool's default size: one
  process per core). Both then reply with the message's text.
- **Event-loop lag.** Each bot runs a ticker on its own event loop that sleeps 5 ms at a time
  and records how late it wakes: what any other chat's update, a timer or a heartbeat would
  wait before the loop got to it. Recorded from the end of the warm-up to the last reply, and
  read back through a control chat. p50, p99 and max are over those ticks.
- **Throughput and latency.** From FakeTelegram's record, as in the peers benchmark: *reply*
  latency is from a message's push to its reply; *violations*, *lost*, *duplicates* check
  per-chat order and delivery.
- **CPU.** From `/proc`, in 10 ms clock ticks, over the measure: *CPU µs/update* is the bot's
  whole process tree (its pool processes included); *loop thread µs/update* is the bot's
  event-loop thread alone (for offload: sending, waking, replying; the pool's feeder threads
  and processes are the rest).
- **Pinning.** The harness (FakeTelegram and the load driver) is pinned to core 0; the bot and
  its pool are not pinned, so on a 2-core machine one pool process shares core 0 with the
  harness.
- **Noise.** On a small machine shared with other work, updates/s and CPU per update move by
  tens of percent from run to run (the header's load averages say how busy it was); the lag
  figures differ between the two bots by orders of magnitude, and are the robust part."""


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _rows(results: list[dict[str, Any]], part: str) -> dict[str, dict[str, Any]]:
    return {r["row"]: r for r in results if r["part"] == part and "skipped" not in r}


def figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Headline figures: offload's throughput over inline's (backlog), and each row's worst
    loop lag (None: not measured)."""
    out: dict[str, Any] = {}
    backlog = _rows(results, "backlog")
    inline, offload = backlog.get("inline"), backlog.get("offload")
    if inline and offload and inline["throughput"]:
        out["throughput_ratio"] = round(offload["throughput"] / inline["throughput"], 2)
    for part in TITLES:
        for key, r in _rows(results, part).items():
            out[f"{part}_{key}_lag_max_ms"] = r.get("lag_max_ms")
            out[f"{part}_{key}_lag_p99_ms"] = r.get("lag_p99_ms")
    return out


TABLE = (
    "| bot | updates/s | reply p50 ms | reply p99 ms | loop lag p50 ms | loop lag p99 ms "
    "| loop lag max ms | CPU µs/update | loop thread µs/update | peak RSS MB | violations "
    "| lost | duplicates | notes |"
)


def _table(results: list[dict[str, Any]], part: str) -> list[str]:
    lines = [TABLE, "|" + "---|" * 14]
    for r in results:
        if r["part"] != part:
            continue
        if "skipped" in r:
            lines.append(f"| {r['label']} | skipped: {r['skipped']} |" + " |" * 12)
            continue
        lines.append(
            f"| {r['label']} | {_fmt(r['throughput'])} | {_fmt(r['p50_ms'], 1)} "
            f"| {_fmt(r['p99_ms'], 1)} | {_fmt(r.get('lag_p50_ms'), 2)} "
            f"| {_fmt(r.get('lag_p99_ms'), 1)} | {_fmt(r.get('lag_max_ms'), 1)} "
            f"| {_fmt(r.get('cpu_us'))} | {_fmt(r.get('loop_thread_us'))} "
            f"| {_fmt(r.get('rss_mb'))} | {r['violations']} | {r['lost']} | {r['duplicates']} "
            f"| {r['note']} |"
        )
    return lines


def write_markdown(
    path: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    lines = header("offload(): 5 ms of CPU per update, inline or in the pool", info, command)
    fig = figures(results)
    backlog = _rows(results, "backlog")
    if "throughput_ratio" in fig:
        inline, offload = backlog["inline"], backlog["offload"]
        lines += [
            f"**Headline.** With every message queued at once, offload() answers "
            f"{offload['throughput']:,.0f} updates/s against {inline['throughput']:,.0f} "
            f"inline ({fig['throughput_ratio']:.2f}×), and its event loop is never late by "
            f"more than {_fmt(offload.get('lag_max_ms'), 1)} ms (inline: "
            f"{_fmt(inline.get('lag_max_ms'), 0)} ms, its p99 "
            f"{_fmt(inline.get('lag_p99_ms'), 0)} ms).",
            "",
        ]
    lines += ["## Method", "", METHOD, ""]
    for part, title in TITLES.items():
        if not any(r["part"] == part for r in results):
            continue
        lines += [f"## {title}", "", plans.get(part, ""), "", *_table(results, part), ""]
    path.write_text("\n".join(lines))


def write_png(path: Path, results: list[dict[str, Any]], info: dict[str, str]) -> None:
    """Per part: updates/s, reply p99 and the loop lag's p99 and max, one bar per bot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [p for p in TITLES if any(r["part"] == p for r in results)]
    # (key, title, the left end of a log scale; None: linear)
    measures = [
        ("throughput", "updates/s (higher is better)", None),
        ("p99_ms", "reply p99, ms, log scale", 1.0),
        ("lag_p99_ms", "event-loop lag p99, ms, log scale", 0.1),
        ("lag_max_ms", "event-loop lag max, ms, log scale", 0.1),
    ]
    fig, axes = plt.subplots(
        len(parts), len(measures), figsize=(18, 0.8 + 2.4 * len(parts)), squeeze=False
    )
    for i, part in enumerate(parts):
        rows = [r for r in results if r["part"] == part]
        for j, (key, title, floor) in enumerate(measures):
            ax = axes[i][j]
            values = [max(r.get(key) or 0, floor or 0) for r in rows]
            bars = ax.barh(range(len(rows)), values,
                           color=[ROW_COLORS.get(r["row"], "grey") for r in rows])  # fmt: skip
            names = [r["label"] for r in rows] if j == 0 else [""] * len(rows)
            ax.set_yticks(range(len(rows)), names, fontsize=8)
            ax.invert_yaxis()
            if floor is not None:
                ax.set_xscale("log")
                ax.set_xlim(left=floor, right=max(values) * 20)
            ax.set_title(f"{part}: {title}", fontsize=9)
            labels = ["skipped" if "skipped" in r else _fmt(r.get(key), 1) for r in rows]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
            if floor is None:
                ax.margins(x=0.35)
    fig.suptitle(
        f"offload(): 5 ms of CPU per update, inline vs in the pool — {info['cpu']}, {info['date']}",
        fontsize=10,
    )
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
    """Write offload.md, offload.png and offload.json into ``out``."""
    write_markdown(out / "offload.md", results, info, plans, command)
    write_png(out / "offload.png", results, info)
    payload = {"machine": info, "plans": plans, "command": command, "figures": figures(results),
               "results": results}  # fmt: skip
    (out / "offload.json").write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.offload_report DIR``: rebuild DIR's report from its offload.json."""
    return rebuild_main("offload", write, argv)


if __name__ == "__main__":
    sys.exit(main())
