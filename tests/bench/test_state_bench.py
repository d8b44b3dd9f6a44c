"""``python -m bench --scenario state``: the report builder on a canned result (goals met and
NOT met, every table, the chart), and a tiny real run in its own process on the backends that
need no server (memory, SQLite) and PTB's PicklePersistence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import state, state_report

REPO = Path(__file__).resolve().parents[2]


def _row(part: str, row: str, framework: str = "tgrunner", **measures: Any) -> dict[str, Any]:
    return {"part": part, "row": row, "label": f"{row} label", "framework": framework, **measures}


def _canned() -> list[dict[str, Any]]:
    lat = {"p50_ms": 0.2, "p99_ms": 0.5, "max_ms": 0.9, "mean_ms": 0.25}
    bank = {"concurrency": 64, "transfers": 400, "failed": 0, "total_kept": True, "negative": 0}
    hand = {"rounds": 40, "hold_ms": 2.0, "processes": 2, "samples": 39, "missed": 0}
    return [
        _row("update", "sqlite", **lat, get_p50_ms=0.05),
        _row("update", "postgresql", **{**lat, "p50_ms": 1.9}, get_p50_ms=0.2),
        _row("transactions", "sqlite", **bank, tx_per_s_1=5000.0, tx_per_s_2=4000.0),
        _row("transactions", "redis", **{**bank, "total_kept": False}, tx_per_s_1=1000.0,
             tx_per_s_2=None),
        _row("handoff", "sqlite", **hand, p50_ms=0.6, p99_ms=1.8, max_ms=2.0),
        _row("handoff", "aiogram", "aiogram", **hand, p50_ms=98.0, p99_ms=101.0, max_ms=102.0),
        _row("fsm", "aiogram-isolation", "aiogram", **lat, cycles_per_s=1500.0, lost_updates=0),
        _row("fsm", "tgrunner-sqlite", **lat, cycles_per_s=3000.0, lost_updates=0),
        _row("persistence", "ptb-pickle", "ptb", **{**lat, "p50_ms": 0.9}, users=1000,
             updates=200, at_risk="60 s", flush_ms=0.8, file_kb=40.0),
        _row("persistence", "tgrunner-sqlite", **{**lat, "p50_ms": 0.3}, users=1000,
             updates=200, at_risk="nothing"),
        _row("fsm", "tgrunner-mysql", **lat, cycles_per_s=900.0, lost_updates=0, failed=3,
             error="StateUnavailable: Too many connections"),
        {"part": "fsm", "row": "tgrunner-redis", "label": "redis", "skipped": "no server"},
    ]  # fmt: skip


@pytest.mark.timeout(60)
def test_the_report_says_which_goals_were_met(tmp_path: Path) -> None:
    info = {"cpu": "test cpu", "date": "today"}
    plans = {part: f"{part} plan." for part in state_report.TITLES}
    state_report.write(tmp_path, _canned(), info, plans, "cmd")
    text = (tmp_path / "state.md").read_text()
    assert "`sqlite`: update p50 **0.200 ms** (goal ≤ 0.3 ms): **met**." in text
    assert "`postgresql`: update p50 **1.900 ms** (goal ≤ 1.5 ms): **NOT met**." in text
    assert "`sqlite`: lock handoff p99 **1.80 ms** (goal ≤ 5 ms): **met**." in text
    assert "lock handoff p99 **101" not in text  # the peer has no goal
    assert "(not on redis): **NO**" in text
    assert "0 updates lost over 3 storages, failed cycles on tgrunner-mysql (3): **NO**" in text
    assert "**tgrunner-mysql label**: 3 failed; the first: `StateUnavailable: Too many" in text
    for title in state_report.TITLES.values():
        assert f"## {title}" in text
    assert "| sqlite label | 5,000 | 4,000 | 0.8× |" in text
    assert "| 0.600 | 1.800 | 2.000 | 163.3× |" in text  # aiogram's p50 over sqlite's
    assert "| tgrunner-sqlite label | 0.200 | 0.500 | 3,000 | 2.0× | 0 |" in text
    assert "| 0.300 | 0.500 | 3.0× |" in text  # PicklePersistence's p50 over ours
    assert "Skipped: **redis**: no server" in text
    data = json.loads((tmp_path / "state.json").read_text())
    assert [ok for _, ok in data["goals"]] == [True, False, True]
    assert (tmp_path / "state.png").stat().st_size > 10_000


def test_percentiles_are_nearest_rank_in_ms() -> None:
    found = state.percentiles([i / 1000 for i in range(1, 101)])  # 1 .. 100 ms
    assert found == {"p50_ms": 51.0, "p99_ms": 100.0, "max_ms": 100.0}
    assert state.percentiles([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_tiny_state_run_writes_its_report(tmp_path: Path) -> None:
    pythonpath = os.pathsep.join(p for p in (str(REPO / "src"), str(REPO)) if p)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "state", "--quick", "--updates", "20",
         "--rows", "memory", "sqlite", "ptb", "--out", str(tmp_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": pythonpath}, capture_output=True,
        text=True, timeout=230,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    results = json.loads((tmp_path / "state.json").read_text())["results"]
    by = {(r["part"], r["row"]): r for r in results}
    for r in results:
        assert "skipped" not in r, r
    assert {p for p, _ in by} == {"update", "transactions", "handoff", "fsm", "persistence"}
    assert {"sqlite", "memory"} == {row for p, row in by if p == "update"}
    bank = by["transactions", "sqlite"]
    assert bank["total_kept"] and bank["negative"] == 0 and bank["tx_per_s_2"] > 0, bank
    hand = by["handoff", "sqlite"]
    assert hand["processes"] == 2 and hand["samples"] >= 20, hand  # 2 x 20 rounds, less 1
    assert 0 < hand["p50_ms"] < 1000, hand
    assert by["fsm", "tgrunner-sqlite"]["lost_updates"] == 0
    assert {row for p, row in by if p == "persistence"} == {
        "ptb-pickle", "ptb-pickle-10k", "ptb-pickle-on-flush", "tgrunner-sqlite"
    }  # fmt: skip
    assert (
        by["persistence", "ptb-pickle-10k"]["file_kb"] > by["persistence", "ptb-pickle"]["file_kb"]
    )
    assert "| sqlite |" in (tmp_path / "state.md").read_text()
