"""``python -m bench --scenario jobs``: the report builder on canned results (goals met and
NOT met, every table, the chart), the chaos measures on a hand-made record, and a tiny real
run in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import jobs, jobs_report
from tgrunner.testing import FakeTelegram, RecordedRequest

REPO = Path(__file__).resolve().parents[2]


def _row(row: str, part: str, **figures: Any) -> dict[str, Any]:
    return {"row": row, "label": f"{row} label", "backend": "embedded", "part": part,
            "note": "", **figures}  # fmt: skip


@pytest.mark.timeout(60)
def test_the_report_says_which_goals_were_met(tmp_path: Path) -> None:
    results = [
        _row("embedded", "throughput", jobs_per_s=2500, worker_cpu_us=300, enqueue_per_s=9000,
             enqueue_cpu_us=35, seconds=4.0),
        _row("embedded-c8", "throughput", jobs_per_s=1500, worker_cpu_us=350,
             enqueue_per_s=8000, enqueue_cpu_us=36, seconds=6.6),
        _row("embedded-chaos", "chaos", jobs=2000, seconds=40.0, jobs_per_s=50, kills=12,
             replied=2000, lost=0, duplicates=3, cut_runs=2, max_wait_s=4.9, mean_wait_s=4.1,
             states={"finished": 2000}),
        _row("embedded-wake-fifo", "wake", p50_ms=1.0, p99_ms=2.0, max_ms=3.0,
             idle_cpu_pct=0.0),
        {**_row("embedded-wake-poll", "wake"), "skipped": "the row failed: boom"},
    ]  # fmt: skip
    info = {"date": "2026-01-01 00:00 UTC", "cpu": "test cpu, nproc 2"}
    plans = {p: f"{p} plan" for p in ("throughput", "chaos", "wake")}
    jobs_report.write(tmp_path, results, info, plans, "python -m bench --scenario jobs")
    text = (tmp_path / "jobs.md").read_text()
    assert "**2,500 jobs/s** enqueue to completion (goal ≥ 2,000): **met**" in text
    # 3 duplicates where only 2 runs were cut: the bound is broken.
    assert "**0 without a reply, 3 duplicates** (bound: 2 runs cut by a kill)" in text
    assert text.count("**NOT met**") == 1
    assert "| embedded-c8 label | 1,500 | 0.60 |" in text
    assert "Skipped: **embedded-wake-poll label**: the row failed: boom" in text
    assert (tmp_path / "jobs.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "jobs.json").read_text())
    assert saved["command"] == "python -m bench --scenario jobs"


def _reply(message_id: int, at: float) -> RecordedRequest:
    params = {"chat_id": 1, "text": "x", "reply_parameters": {"message_id": message_id}}
    return RecordedRequest("sendMessage", params, "t", at, 200, {"message_id": 99})


def test_chaos_figures_bound_duplicates_by_the_runs_cut() -> None:
    tg = FakeTelegram()
    tg.requests.extend([_reply(10, 1.0), _reply(11, 2.0), _reply(11, 6.0)])
    asked = {"a": 10, "b": 11, "c": 12}
    started = {
        "a": [(100, 0.5)],  # one run, never cut (its worker died after it ended)
        "b": [(100, 1.5), (200, 5.5)],  # replied, then its worker died before recording it
        "c": [(100, 1.8), (200, 5.9)],  # cut mid-run, ran again, reply lost (no record)
    }
    kills = [(2.5, 100), (7.0, 200)]
    figures = jobs.chaos_figures(tg, asked, started, kills)
    assert figures == {
        "replied": 2, "lost": 1, "duplicates": 1, "cut_runs": 2, "kills": 2,
        "max_wait_s": 3.4, "mean_wait_s": 3.2,
    }  # fmt: skip


def test_the_rows_have_unique_keys_and_known_parts() -> None:
    rows = jobs.all_rows()
    assert len({row.key for row in rows}) == len(rows)
    assert {row.part for row in rows} <= {"throughput", "chaos", "wake"}
    assert {"embedded", "embedded-chaos", "embedded-wake-fifo"} <= {row.key for row in rows}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_tiny_real_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "jobs", "--quick", "--updates", "300",
         "--rows", "embedded", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [result] = json.loads((tmp_path / "jobs.json").read_text())["results"]
    assert result["finished"] == 300 and result["exit_codes"] == [0, 0], result
    assert result["jobs_per_s"] > 0
