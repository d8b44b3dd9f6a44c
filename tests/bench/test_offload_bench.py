"""``python -m bench --scenario offload``: the report builder on a canned result, and a tiny
real run in its own process (both bots, both parts) whose inline bot blocks its event loop
and whose offloading bot does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import offload_report

REPO = Path(__file__).resolve().parents[2]


def _canned(row: str, part: str, **measures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "row": row, "label": f"{row} label", "part": part, "note": "", "updates": 100,
        "replied": 100, "seconds": 1.0, "throughput": 100.0, "p50_ms": 5.0, "p99_ms": 9.0,
        "violations": 0, "lost": 0, "duplicates": 0, "lag_p50_ms": 0.2, "lag_p99_ms": 2.0,
        "lag_max_ms": 4.0, "lag_ticks": 200, "cpu_us": 5200.0, "loop_thread_us": 300.0,
        "rate": 0.0, "rss_mb": 40.0,
    }  # fmt: skip
    return {**base, **measures}


@pytest.mark.timeout(60)
def test_the_report_has_a_headline_and_a_table_per_part(tmp_path: Path) -> None:
    results = [
        _canned("inline", "backlog", throughput=190.0, lag_p99_ms=180.0, lag_max_ms=260.0),
        _canned("offload", "backlog", throughput=350.0),
        _canned("inline", "paced", rate=100.0),
        {
            "row": "offload",
            "label": "offload label",
            "part": "paced",
            "note": "",
            "skipped": "the bot did not poll",
        },
    ]
    info = {"cpu": "test cpu", "date": "today"}
    offload_report.write(tmp_path, results, info, {"backlog": "B.", "paced": "P."}, "cmd")
    text = (tmp_path / "offload.md").read_text()
    assert "answers 350 updates/s against 190 inline (1.84×)" in text
    assert "never late by more than 4.0 ms (inline: 260 ms, its p99 180 ms)" in text
    assert "## Backlog" in text and "## Paced" in text and "skipped: the bot did not poll" in text
    assert text.count("| inline label |") == 2
    data = json.loads((tmp_path / "offload.json").read_text())
    assert data["figures"]["throughput_ratio"] == 1.84
    assert (tmp_path / "offload.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_tiny_offload_run_writes_its_report(tmp_path: Path) -> None:
    pythonpath = os.pathsep.join(p for p in (str(REPO / "src"), str(REPO)) if p)
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "offload", "--updates", "80",
         "--chats", "10", "--seconds", "1", "--out", str(tmp_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": pythonpath}, capture_output=True,
        text=True, timeout=230,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    results = json.loads((tmp_path / "offload.json").read_text())["results"]
    by = {(r["row"], r["part"]): r for r in results}
    assert set(by) == {
        (row, part) for row in ("inline", "offload") for part in ("backlog", "paced")
    }
    for r in by.values():
        assert "skipped" not in r, r
        assert r["lost"] == 0 and r["violations"] == 0 and r["duplicates"] == 0, r
        assert r["lag_ticks"] > 0, r
    inline, offload = by["inline", "backlog"], by["offload", "backlog"]
    # Ten chats' handlers ready at once each burn ~5 ms on the inline bot's loop.
    assert inline["lag_max_ms"] >= 20, inline
    assert offload["lag_p99_ms"] < inline["lag_max_ms"], (offload, inline)
    assert offload["loop_thread_us"] < offload["cpu_us"]  # the loop ran elsewhere
    assert "| inline: 5 ms loop in the handler |" in (tmp_path / "offload.md").read_text()
