"""Write the peers benchmark's results: a Markdown table, a PNG chart and the raw JSON."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench.harness import NODE_MODULES

__all__ = ["machine", "ratios", "write_markdown", "write_png"]

SCENARIO_TITLES = {
    "a": "(a) zero API latency, backlog pushed at once",
    "b": "(b) 50 ms API latency on every method but getUpdates, fixed offered rate",
}
COLORS = {"tgrunner": "#2a7ab0", "aiogram": "#e08a1e", "ptb": "#3a9a4a", "grammy": "#8e5bb5"}


R = TypeVar("R")


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else "unknown"


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return "not installed"


def _node_package(name: str) -> str:
    try:
        return json.loads((NODE_MODULES / name / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "not installed"


def machine(*, pinned: bool) -> dict[str, str]:
    """What the figures were measured on, for the report's header."""
    node = "absent"
    if shutil.which("node"):
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{_cpu_model()}, nproc {os.cpu_count()}",
        "load average at start": load,
        "pinning": "FakeTelegram + load driver on core 0, the bot on core 1"
        if pinned
        else "none (fewer than 2 cores available)",
        "python": platform.python_version(),
        "versions": f"tgrunner {_version('tgrunner')}, aiogram {_version('aiogram')}, "
        f"python-telegram-bot {_version('telegram')}, Node {node}, "
        f"grammy {_node_package('grammy')}, @grammyjs/runner {_node_package('@grammyjs/runner')}",
    }


def ratios(results: list[dict[str, Any]]) -> None:
    """Set each measured row's ``ratio``: its throughput over the best own-runner row of its
    framework in the same scenario; tgrunner native is compared with the best peer row."""
    best: dict[tuple[str, str], float] = {}
    for r in results:
        if "skipped" in r or not r["own_runner"]:
            continue
        for group in (r["framework"], "peers"):
            key = (r["scenario"], group)
            best[key] = max(best.get(key, 0.0), r["throughput"])
    for r in results:
        if "skipped" in r:
            continue
        group = "peers" if r["framework"] == "tgrunner" else r["framework"]
        base = best.get((r["scenario"], group))
        r["ratio"] = round(r["throughput"] / base, 2) if base else None


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


HEADER = (
    "| bot | updates/s | × best own runner | CPU µs/update | peak RSS MB | p50 ms | p99 ms "
    "| violations | lost | duplicates | notes |"
)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [HEADER, "|" + "---|" * 11]
    for r in rows:
        if "skipped" in r:
            continue
        ratio = "—" if r.get("ratio") is None else f"{r['ratio']:.2f}×"
        lines.append(
            f"| {r['label']} | {_fmt(r['throughput'])} | {ratio} | {_fmt(r['cpu_us'])} "
            f"| {_fmt(r['rss_mb'])} | {_fmt(r['p50_ms'], 1)} | {_fmt(r['p99_ms'], 1)} "
            f"| {r['violations']} | {r['lost']} | {r['duplicates']} | {r['note']} |"
        )
    skipped = [r for r in rows if "skipped" in r]
    for r in skipped:
        lines.append(f"\n- Skipped: **{r['label']}**: {r['skipped']}")
    return lines


def header(title: str, info: dict[str, str], command: str) -> list[str]:
    """A report's first lines: its title, the machine and run (``info``), the command."""
    return [f"# {title}", "", *(f"- **{k}**: {v}" for k, v in info.items()),
            f"- **command**: `{command}`", ""]  # fmt: skip


def write_markdown(
    path: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    lines = header("tgrunner against its peers: echo bots on FakeTelegram", info, command)
    lines += [
        "Each bot runs in its own process and sends every message's text back into its chat. "
        "FakeTelegram and the load driver run in the harness process. *updates/s* is replies "
        "over the time from the first message offered to the last reply; *CPU µs/update* is "
        "the bot process's CPU time (user + system, from `/proc`) from its first `getUpdates` "
        "to its last reply, over the replies; *peak RSS* is its `VmHWM`; p50/p99 run from a "
        "message being offered to its reply. A *violation* is a reply that comes after the "
        "reply to a later message of the same chat. *× best own runner* divides a row's "
        "updates/s by the best row of the same framework on that framework's own runner "
        "(for tgrunner native: by the best peer row of any framework).",
        "",
    ]
    for scenario, plan in plans.items():
        rows = [r for r in results if r["scenario"] == scenario]
        if not rows:
            continue
        lines += [f"## {SCENARIO_TITLES[scenario]}", "", plan, ""]
        lines += _table(rows)
        lines += _metrics_cost(rows)
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


METRICS_GOAL = 0.03
"""The most ``--metrics`` may cost of throughput in scenario (a) (issue: 3 %)."""


def _metrics_cost(rows: list[dict[str, Any]]) -> list[str]:
    """The throughput ``--metrics`` costs: the native row with metrics against the one
    without, measured in the same run (goal: at most 3 %).

    With the two rows given several times (``--rows native native-metrics native
    native-metrics ...``, the way to see past a host whose speed drifts), the i-th run of each
    row make a pair, run back to back, and the goal is judged on the median of the pairs'
    costs: a drift of the host's speed over the run, which moves both runs of a pair alike,
    then cancels out, where it shifts the medians of the two rows apart. The rows' medians are
    reported beside it."""
    done = [r for r in rows if "skipped" not in r]
    plain = [r for r in done if r["row"] == "native"]
    metered = [r for r in done if r["row"] == "native-metrics"]
    if not plain or not metered:
        return []
    if any("together" in r for r in done):
        return _side_by_side_cost(plain, metered)
    speed = statistics.median(r["throughput"] for r in plain)
    speed_m = statistics.median(r["throughput"] for r in metered)
    if not speed or not all(r["throughput"] for r in plain):
        return []
    cpu = statistics.median(r["cpu_us"] for r in metered) - statistics.median(
        r["cpu_us"] for r in plain
    )
    medians_cost = 1 - speed_m / speed
    pairs = [1 - m["throughput"] / p["throughput"] for p, m in zip(plain, metered, strict=False)]
    if len(pairs) >= 3:
        cost = statistics.median(pairs)
        how = (
            f"median of {len(pairs)} pairs of runs back to back; the rows' medians: "
            f"{_fmt(speed_m)} against {_fmt(speed)} updates/s, {medians_cost:.1%}"
        )
    else:
        cost = medians_cost
        runs = f"medians of {len(plain)} and {len(metered)} runs, " if len(plain) > 1 else ""
        how = f"{runs}{_fmt(speed_m)} against {_fmt(speed)} updates/s"
    verdict = "met" if cost <= METRICS_GOAL else "NOT met"
    return [
        "",
        f"- `--metrics` costs **{cost:.1%}** of throughput ({how}) and {cpu:+.1f} µs of CPU "
        f"per update (medians; goal ≤ 3 %: **{verdict}**).",
    ]


def _side_by_side_cost(plain: list[dict[str, Any]], metered: list[dict[str, Any]]) -> list[str]:
    """The metrics cost from runs side by side (``--side-by-side``): each pair's two bots took
    turns on one core, every 0.1 s, so both saw the same host; a bot that runs alone on its
    core gets through updates at 1 / its CPU per update. A pair's cost is the ratio of the
    two; the goal is judged on the median of the pairs'."""
    by_pair = {r["together"]: r for r in plain if r.get("cpu_us")}
    pairs = [
        (by_pair[m["together"]], m) for m in metered if m.get("cpu_us") and m["together"] in by_pair
    ]
    if not pairs:
        return []
    costs = sorted(1 - p["cpu_us"] / m["cpu_us"] for p, m in pairs)
    cost = statistics.median(costs)
    cpu = statistics.median(m["cpu_us"] - p["cpu_us"] for p, m in pairs)
    verdict = "met" if cost <= METRICS_GOAL else "NOT met"
    spread = f"{costs[0]:.1%} to {costs[-1]:.1%}" if len(costs) > 1 else f"{costs[0]:.1%}"
    return [
        "",
        f"- `--metrics` costs **{cost:.1%}** of throughput: the median of {len(costs)} pairs "
        f"run side by side, taking turns on one core ({spread}; throughput goes as 1 / CPU "
        f"per update); {cpu:+.2f} µs of CPU per update (median; goal ≤ 3 %: **{verdict}**).",
    ]


def _bar_label(r: dict[str, Any], key: str) -> str:
    if "skipped" in r:
        return "skipped"
    if r.get(key) is None:
        return "n/a"
    text = f"{r[key]:,.0f}"
    if key == "throughput" and r["violations"]:
        text += f"  ({r['violations']:,} order violations)"
    if key == "throughput" and r["lost"]:
        text += f"  ({r['lost']:,} unanswered)"
    return text


def write_png(
    path: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    targets: dict[tuple[str, str], Any],
) -> None:
    """Bars per row: updates/s, CPU µs per update and p99 for each scenario. ``targets`` maps
    ``(scenario, measure)`` to a value drawn as a dashed line (a target, or the offered rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in SCENARIO_TITLES if any(r["scenario"] == s for r in results)]
    measures = [
        ("throughput", "updates/s (higher is better)", False),
        ("cpu_us", "bot CPU µs per update (lower is better)", False),
        ("p99_ms", "p99 latency, ms, log scale (lower is better)", True),
    ]
    fig, axes = plt.subplots(
        len(scenarios), len(measures), figsize=(19, 1.2 + 4.4 * len(scenarios)), squeeze=False
    )
    for i, scenario in enumerate(scenarios):
        rows = [r for r in results if r["scenario"] == scenario]
        labels = [r["label"] for r in rows]
        colors = [COLORS.get(r["framework"], "grey") for r in rows]
        for j, (key, title, log) in enumerate(measures):
            ax = axes[i][j]
            values = [r.get(key) or 0 for r in rows]
            bars = ax.barh(range(len(rows)), values, color=colors)
            ax.set_yticks(range(len(rows)), labels if j == 0 else [""] * len(rows), fontsize=8)
            ax.invert_yaxis()
            if log:
                ax.set_xscale("log")
            line = targets.get((scenario, key))
            if line is not None:
                ax.axvline(line[0], color="red", linestyle="--", linewidth=1, label=line[1])
                ax.legend(fontsize=7, loc="lower right")
            ax.set_title(f"{SCENARIO_TITLES[scenario][:3]} {title}", fontsize=9)
            ax.bar_label(bars, labels=[_bar_label(r, key) for r in rows], fontsize=7, padding=2)
            ax.margins(x=0.45 if j == 0 else 0.25)
    fig.suptitle(
        f"tgrunner vs peers, echo bots on FakeTelegram — {info['cpu']}, {info['date']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(path: Path, results: list[dict[str, Any]], info: dict[str, str]) -> None:
    path.write_text(json.dumps({"machine": info, "results": results}, indent=1) + "\n")


def rebuild_main(name: str, write: Callable[..., None], argv: list[str] | None) -> int:
    """``python -m bench.<name>_report DIR``: write DIR's ``<name>.md`` and ``.png`` again from
    its ``<name>.json`` (after a change to a report module, without running the bots again)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / f"{name}.json").is_file():
        print(f"usage: python -m bench.{name}_report DIR (a folder holding {name}.json)",
              file=sys.stderr)  # fmt: skip
        return 2
    out = Path(args[0])
    data = json.loads((out / f"{name}.json").read_text())
    write(out, data["results"], data["machine"], data["plans"], data.get("command", "?"))
    return 0


def pick_rows(rows: Sequence[R], keys: list[str] | None) -> list[R] | None:
    """The rows ``--rows`` names (each row has a ``key``), all when it names none; None, after
    a line saying which are unknown, when it names rows that are not there."""
    known = {row.key: row for row in rows}  # type: ignore[attr-defined]
    unknown = [key for key in keys or () if key not in known]
    if unknown:
        print(f"unknown rows {unknown}; choose from {', '.join(known)}", file=sys.stderr)
        return None
    return [known[key] for key in keys] if keys else list(rows)
