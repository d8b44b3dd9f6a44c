"""Write the state scenario's results: ``state.md`` (goals, method, one table per part),
``state.png`` (a chart) and ``state.json`` (the raw figures)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.report import COLORS, header, rebuild_main

if TYPE_CHECKING:
    from bench.state import Sizes

__all__ = ["GOAL_HANDOFF_P99_MS", "GOAL_UPDATE_P50_MS", "checks", "describe", "goals", "write"]

GOAL_UPDATE_P50_MS = {"sqlite": 0.3, "postgresql": 1.5, "mysql": 1.5, "redis": 1.5}
"""The issue's goals for ``store.update`` p50, per backend (loopback servers)."""
GOAL_HANDOFF_P99_MS = 5.0
"""The issue's goal for the lock handoff's p99, on every backend that spans processes."""

TITLES = {
    "update": "Single-key update, one call after another",
    "transactions": "Transactions/s: two-key transfers, 64 at a time per process",
    "handoff": "Lock handoff: two processes take turns on one key",
    "fsm": "FSM: aiogram's RedisStorage + RedisEventIsolation against TgrunnerStorage",
    "persistence": "Persistence: PTB's PicklePersistence against TgrunnerPersistence",
}
METHOD = """\
- **Where.** The client is this process (and, for transactions and handoff, one or two child
  processes, `bench/state_proc.py`); the servers (header) run on the same machine, reached
  over loopback TCP. Nothing is pinned: on a 2-core machine the client and the server share
  the cores, so each figure includes the server's own CPU time. Every store uses its
  defaults (SQL pool of 10 connections per process, SQLite `synchronous=normal` in WAL,
  Redis lease 3 s), in a table, key prefix or file of this run's own, removed at the end.
  The servers keep their own defaults (header): PostgreSQL and MariaDB flush their log to
  disk at each commit, Redis here keeps no log (`appendonly=no`), and SQLite in WAL with
  `synchronous=normal` syncs at checkpoints, not at each commit.
- **update.** `await store.update("count", lambda v: v + 1, default=0)` on one key, one call
  after another, after 50 warm-up calls; then `store.get` the same way. Latency per call from
  `time.perf_counter()`; p50/p99 are nearest-rank.
- **transactions.** Random transfers of 1 to 10 between two of 100 accounts (1,000 each at
  the start), each `async with store.transaction(src, dst)`: read both, write both unless the
  balance is short. 64 at a time in one process, then 64 at a time in *each* of two
  processes (the same total, split between them). Transactions/s is over the wall time from
  the first process's start to the last one's end; the total balance and the signs are
  checked after.
- **handoff.** Two processes (for `memory`: two tasks of one process) take turns on one key:
  the holder tells the other through a pipe once it has the lock, so the other asks for it
  and waits; the holder keeps it 2 ms, and as its last act writes a marker (its id and
  `time.monotonic()`, one clock for every process on Linux) in the value it commits (aiogram:
  `set_data` inside the lock, then the release). The handoff is from that marker to the
  waiter's acquisition, so it includes the holder's commit (or release) round trip. A round
  whose waiter had not yet asked when the marker was written measures nothing (*missed*).
  aiogram's lock is `RedisEventIsolation`'s: redis-py's `Lock` with aiogram's 60 s timeout,
  whose waiter polls every 0.1 s (its default): a waiter that asked during a 2 ms hold gets
  the lock ~98 ms after its release.
- **fsm.** One user's FSM cycle: `get_data`, then `update_data` (a counter and a step). For
  aiogram with isolation it runs inside `RedisEventIsolation.lock(key)`, as aiogram's
  dispatcher runs a handler; aiogram's own `update_data` is `get_data` + `set_data`.
  `TgrunnerStorage.update_data` is a one-key transaction; under `tgrunner run` the updates of
  one user are already handled one at a time (the lanes, across worker processes), so it
  needs no lock around the handler. Cycles one after another over the users (p50/p99),
  then 64 at a time, each on users of its own (cycles/s), then the counters summed: a lost
  update is a cycle whose count is missing. A cycle that raises is counted as failed, with
  the first error under the table (what a handler would get), and its count not expected.
- **persistence.** What PTB's `Application` asks of its persistence for an update that
  changed one user's `user_data`: `refresh_user_data`, then `update_user_data` with a deep
  copy (under `tgrunner run` that happens after each update, before it counts as finished;
  under PTB's own runner every `update_interval`, 60 s). Users are stored first (a dict of
  four fields each), then each update changes a random user. `PicklePersistence`'s default
  (`on_flush=False`, one file) rewrites the whole file at each changed user, without fsync;
  `on_flush=True` keeps changes in memory until `flush()` (timed once, at the end).
- **Noise.** On a small machine shared with other work the figures move between runs, p99s
  most: compare rows of one run, and read the header's load averages. SQLite's commits run in
  the store's own thread, and a hop to a thread and back costs about 0.1 ms here, more when
  the other core is busy (its reads run on the event loop, a few µs); a bare SQLite commit
  (WAL, `synchronous=normal`) costs ~10 µs."""


def describe(sizes: Sizes) -> dict[str, str]:
    """What each part did, for the report."""
    return {
        "update": f"{sizes.sequential:,} calls of each per backend.",
        "transactions": f"{sizes.transfers:,} transfers per run between {sizes.accounts} "
        f"accounts, {sizes.concurrency} at a time per process.",
        "handoff": f"{sizes.rounds} acquisitions per contender ({sizes.aiogram_rounds} for "
        f"aiogram, whose handoffs take ~0.1 s), each held {sizes.hold * 1000:g} ms.",
        "fsm": f"{sizes.users:,} users; {sizes.sequential:,} cycles one after another, then "
        f"{2 * sizes.sequential:,} with {sizes.concurrency} at a time.",
        "persistence": f"{sizes.users:,} users stored (10,000 in the row that says so); "
        f"{sizes.sequential:,} updates (300 with 10,000 users).",
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def _done(results: list[dict[str, Any]], part: str) -> dict[str, dict[str, Any]]:
    return {r["row"]: r for r in results if r["part"] == part and "skipped" not in r}


def goals(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Each goal of the issue with whether it was met, from the rows measured."""
    out = []
    for backend, r in _done(results, "update").items():
        goal = GOAL_UPDATE_P50_MS.get(backend)
        if goal is not None:
            out.append(
                (
                    f"`{backend}`: update p50 **{r['p50_ms']:.3f} ms** (goal ≤ {goal:g} ms)",
                    r["p50_ms"] <= goal,
                )
            )
    for backend, r in _done(results, "handoff").items():
        if r["framework"] == "tgrunner" and r["processes"] == 2 and r["p99_ms"] is not None:
            out.append(
                (
                    f"`{backend}`: lock handoff p99 **{r['p99_ms']:.2f} ms** (goal ≤ "
                    f"{GOAL_HANDOFF_P99_MS:g} ms)",
                    r["p99_ms"] <= GOAL_HANDOFF_P99_MS,
                )
            )
    return out


def checks(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """What the run checked besides speed: the transfers keep the money and none fails; no
    FSM cycle fails or loses its update."""
    out = []
    bank = _done(results, "transactions")
    if bank:
        bad = [b for b, r in bank.items() if not r["total_kept"] or r["negative"] or r["failed"]]
        out.append(
            (
                f"Transfers on {', '.join(bank)}: total balance kept, no balance negative, "
                "none failed" + (f" (not on {', '.join(bad)})" if bad else ""),
                not bad,
            )
        )
    fsm = _done(results, "fsm")
    if fsm:
        lost = sum(r["lost_updates"] for r in fsm.values())
        failed = [f"{k} ({r['failed']})" for k, r in fsm.items() if r.get("failed")]
        out.append(
            (
                f"FSM cycles: {lost} updates lost over {len(fsm)} storages, "
                + (f"failed cycles on {', '.join(failed)}" if failed else "none failed"),
                lost == 0 and not failed,
            )
        )
    return out


def _errors(rows: list[dict[str, Any]]) -> list[str]:
    """A line per row that had failures, with the first error."""
    return [
        f"\n- **{r['label']}**: {r['failed']:,} failed; the first: `{r['error']}`"
        for r in rows
        if r.get("failed") and r.get("error")
    ]


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "—"
    ratio = a / b
    return f"{ratio:,.1f}×" if ratio >= 0.95 else f"{ratio:.2g}×"


def _update_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | update p50 ms | update p99 ms | mean ms | get p50 ms | goal p50 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        goal = GOAL_UPDATE_P50_MS.get(r["row"])
        verdict = (
            "floor (no I/O)" if goal is None else f"≤ {goal:g} ms: {_verdict(r['p50_ms'] <= goal)}"
        )
        lines.append(
            f"| {r['label']} | {_fmt(r['p50_ms'], 3)} | {_fmt(r['p99_ms'], 3)} "
            f"| {_fmt(r['mean_ms'], 3)} | {_fmt(r['get_p50_ms'], 3)} | {verdict} |"
        )
    return lines


def _transactions_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | tx/s, 1 process | tx/s, 2 processes | 2 processes / 1 | µs per tx "
        "(1 process) | failed | total kept | negative balances |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        one, two = r.get("tx_per_s_1"), r.get("tx_per_s_2")
        lines.append(
            f"| {r['label']} | {_fmt(one, 0)} | {_fmt(two, 0)} | {_ratio(two, one)} "
            f"| {_fmt(1e6 / one if one else None, 0)} | {r['failed']} "
            f"| {_fmt(r['total_kept'])} | {r['negative']} |"
        )
    return lines + _errors(rows)


def _handoff_table(rows: list[dict[str, Any]]) -> list[str]:
    peer = next((r for r in rows if r["framework"] == "aiogram"), None)
    lines = [
        "| lock | processes | handoff p50 ms | p99 ms | max ms | aiogram's p50 / this p50 "
        "| samples | missed rounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs = "—" if peer is None or r is peer else _ratio(peer["p50_ms"], r["p50_ms"])
        lines.append(
            f"| {r['label']} | {r['processes']} | {_fmt(r['p50_ms'], 3)} "
            f"| {_fmt(r['p99_ms'], 3)} | {_fmt(r['max_ms'], 3)} | {vs} "
            f"| {r['samples']} | {r['missed']} |"
        )
    return lines


def _fsm_table(rows: list[dict[str, Any]]) -> list[str]:
    base = next((r for r in rows if r["row"] == "aiogram-isolation"), None)
    lines = [
        "| storage | cycle p50 ms | p99 ms | cycles/s, 64 at once | × aiogram + isolation "
        "| failed cycles | lost updates |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs = "—" if base is None else _ratio(r["cycles_per_s"], base["cycles_per_s"])
        lines.append(
            f"| {r['label']} | {_fmt(r['p50_ms'], 3)} | {_fmt(r['p99_ms'], 3)} "
            f"| {_fmt(r['cycles_per_s'], 0)} | {vs} | {r.get('failed', 0)} | {r['lost_updates']} |"
        )
    return lines + _errors(rows)


def _persistence_table(rows: list[dict[str, Any]]) -> list[str]:
    base = next((r for r in rows if r["row"] == "ptb-pickle"), None)
    lines = [
        "| persistence | users | per update p50 ms | p99 ms | PicklePersistence p50 / "
        "this p50 | flush ms | file KB | what a crash loses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs = "—" if base is None or r is base else _ratio(base["p50_ms"], r["p50_ms"])
        lines.append(
            f"| {r['label']} | {r['users']:,} | {_fmt(r['p50_ms'], 3)} "
            f"| {_fmt(r['p99_ms'], 3)} | {vs} | {_fmt(r.get('flush_ms'), 1)} "
            f"| {_fmt(r.get('file_kb'), 0)} | {r['at_risk']} |"
        )
    return lines


TABLES = {
    "update": _update_table,
    "transactions": _transactions_table,
    "handoff": _handoff_table,
    "fsm": _fsm_table,
    "persistence": _persistence_table,
}


def write_markdown(
    path: Path,
    results: list[dict[str, Any]],
    info: dict[str, str],
    plans: dict[str, str],
    command: str,
) -> None:
    lines = header(
        "State store: every backend, the FSM and persistence bridges, and their peers",
        info,
        command,
    )
    lines += ["## Goals", ""]
    found = goals(results)
    lines += [f"- {text}: {_verdict(ok)}." for text, ok in found] or ["- No row ran."]
    lines += [f"- Check: {text}: {'**yes**' if ok else '**NO**'}." for text, ok in checks(results)]
    lines += ["", "## Method", "", METHOD, ""]
    for part, table in TABLES.items():
        mine = [r for r in results if r["part"] == part]
        if not mine:
            continue
        lines += [f"## {TITLES[part]}", "", plans.get(part, ""), ""]
        done = [r for r in mine if "skipped" not in r]
        if done:
            lines += table(done)
        lines += [f"\n- Skipped: **{r['label']}**: {r['skipped']}" for r in mine if "skipped" in r]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def _pairs(
    ax: Any,
    rows: list[dict[str, Any]],
    keys: tuple[str, str],
    names: tuple[str, str],
    title: str,
    *,
    log: bool,
    lines: Sequence[tuple[float, str, str]] = (),
) -> None:
    """Two bars per row (``keys``), darker for the first; ``lines``: goals drawn as red
    vertical lines, each ``(value, label, linestyle)``."""
    height = 0.4
    for j, (key, name) in enumerate(zip(keys, names, strict=True)):
        ys = [i + (j - 0.5) * height for i in range(len(rows))]
        values = [r.get(key) or 0 for r in rows]
        colors = [COLORS.get(r["framework"], "grey") for r in rows]
        bars = ax.barh(
            ys, values, height=height, color=colors, alpha=1.0 if j == 0 else 0.5, label=name
        )
        digits = 3 if log else 0
        ax.bar_label(bars, labels=[_fmt(r.get(key), digits) for r in rows], fontsize=6, padding=2)
    ax.set_yticks(range(len(rows)), [r["label"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
        shown = [r[k] for r in rows for k in keys if r.get(k)] or [1.0]
        ax.set_xlim(left=min(shown) / 3, right=max(shown) * 12)
    else:
        ax.margins(x=0.3)
    for value, label, style in lines:
        ax.axvline(value, color="red", linestyle=style, linewidth=1, label=label)
    ax.legend(fontsize=6, loc="lower right")
    ax.set_title(title, fontsize=9)


def write_png(path: Path, results: list[dict[str, Any]], info: dict[str, str]) -> None:
    """Latency and throughput per part, one bar pair per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (
            "update",
            ("p50_ms", "p99_ms"),
            ("p50", "p99"),
            "update, ms, log (lower is better)",
            True,
            [(1.5, "goal p50, servers: 1.5 ms", "--"), (0.3, "goal p50, SQLite: 0.3 ms", ":")],
        ),
        (
            "transactions",
            ("tx_per_s_1", "tx_per_s_2"),
            ("1 process", "2 processes"),
            "transfers/s, 64 at a time per process (higher is better)",
            False,
            [],
        ),
        (
            "handoff",
            ("p50_ms", "p99_ms"),
            ("p50", "p99"),
            "lock handoff, ms, log (lower is better)",
            True,
            [(GOAL_HANDOFF_P99_MS, "goal p99 5 ms", "--")],
        ),
        (
            "fsm",
            ("p50_ms", "p99_ms"),
            ("p50", "p99"),
            "FSM cycle, ms, log (lower is better)",
            True,
            [],
        ),
        (
            "fsm",
            ("cycles_per_s", "cycles_per_s"),
            ("64 at once", ""),
            "FSM cycles/s, 64 at once (higher is better)",
            False,
            [],
        ),
        (
            "persistence",
            ("p50_ms", "p99_ms"),
            ("p50", "p99"),
            "persistence per update, ms, log (lower is better)",
            True,
            [],
        ),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(19, 9.5))
    for ax, (part, keys, names, title, log, goal) in zip(axes.flat, panels, strict=True):
        rows = [r for r in results if r["part"] == part and "skipped" not in r]
        if not rows:
            ax.set_axis_off()
            continue
        if keys[0] == keys[1]:
            bars = ax.barh(
                range(len(rows)),
                [r.get(keys[0]) or 0 for r in rows],
                color=[COLORS.get(r["framework"], "grey") for r in rows],
            )
            ax.bar_label(
                bars, labels=[_fmt(r.get(keys[0]), 0) for r in rows], fontsize=6, padding=2
            )
            ax.set_yticks(range(len(rows)), [r["label"] for r in rows], fontsize=7)
            ax.invert_yaxis()
            ax.margins(x=0.3)
            ax.set_title(title, fontsize=9)
            continue
        _pairs(ax, rows, keys, names, title, log=log, lines=goal)
    fig.suptitle(
        f"tgrunner state store and its peers — {info.get('cpu', '?')}, {info.get('date', '?')}",
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
    """Write state.md, state.png and state.json into ``out``."""
    write_markdown(out / "state.md", results, info, plans, command)
    write_png(out / "state.png", results, info)
    payload = {
        "machine": info,
        "plans": plans,
        "command": command,
        "goals": goals(results),
        "checks": checks(results),
        "results": results,
    }
    (out / "state.json").write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.state_report DIR``: rebuild DIR's report from its state.json."""
    return rebuild_main("state", write, argv)


if __name__ == "__main__":
    sys.exit(main())
