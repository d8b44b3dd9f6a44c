"""``python -m bench --scenario webhook``: the report builder on a canned result (goal lines
met and NOT met, every table, the chart), and a tiny real run in its own process: tgrunner and
PTB serving FakeTelegram's webhook, tgrunner SIGKILLed and restarted losing nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import webhook_report

REPO = Path(__file__).resolve().parents[2]


def _canned(row: str, part: str, framework: str, **measures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "row": row, "label": f"{row} label", "framework": framework, "part": part,
        "pinned": True, "rate": 2000.0 if part == "ack" else 0.0, "note": "",
        "updates": 1000, "replied": 1000, "seconds": 1.0, "throughput": 1000.0,
        "p50_ms": 1.0, "p99_ms": 2.0, "violations": 0, "lost": 0, "duplicates": 0,
        "rss_mb": 30.0, "harness_cpu_share": 0.5, "acks": 1000, "ack_failed": 0,
        "ack_p50_ms": 0.5, "ack_p99_ms": 2.0, "ack_max_ms": 9.0, "unacknowledged": 0,
        "acked_lost": 0, "cpu_us": 90.0, "cores_busy": 0.9,
    }  # fmt: skip
    if part == "crash":
        base["kills"] = [{"at_s": 1.0, "restart_s": 0.4}, {"at_s": 2.0, "restart_s": 0.5}]
    return {**base, **measures}


@pytest.mark.timeout(60)
def test_the_report_says_which_goals_were_met(tmp_path: Path) -> None:
    results = [
        _canned("tg-webhook", "throughput", "tgrunner", throughput=6200.0),
        _canned("ptb-webhook", "throughput", "ptb", throughput=700.0),
        _canned("tg-webhook", "ack", "tgrunner", ack_p99_ms=7.5),
        _canned("aiogram-webhook", "ack", "aiogram", ack_p99_ms=300.0),
        _canned("tg-webhook", "crash", "tgrunner", duplicates=40),
        _canned("aiogram-webhook", "crash", "aiogram", lost=12, acked_lost=12, violations=3),
        {
            "row": "ptb-webhook",
            "label": "PTB",
            "framework": "ptb",
            "part": "crash",
            "note": "",
            "skipped": "the bot exited with 1",
        },
    ]
    info = {"date": "2026-01-01 00:00 UTC", "cpu": "test cpu, nproc 2"}
    plans = {p: f"{p} plan" for p in ("throughput", "ack", "crash")}
    webhook_report.write(tmp_path, results, info, plans, "python -m bench --scenario webhook")
    text = (tmp_path / "webhook.md").read_text()
    assert "**6,200 updates/s** (goal ≥ 5,000/s): **met**" in text
    assert "p99 **7.50 ms** (goal ≤ 5 ms): **NOT met**" in text
    assert "lost **0**, order violations **0** (goal 0 and 0): **met**" in text
    for title in webhook_report.TITLES.values():
        assert f"## {title}" in text
    assert "| **12** |" in text  # aiogram's acknowledged and lost
    assert "Skipped: **PTB**: the bot exited with 1" in text
    assert (tmp_path / "webhook.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "webhook.json").read_text())
    assert [ok for _, ok in data["goals"]] == [True, False, True]
    # The report can be written again from the JSON alone.
    (tmp_path / "webhook.md").unlink()
    assert webhook_report.main([str(tmp_path)]) == 0
    assert (tmp_path / "webhook.md").read_text() == text


def _bench(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join((str(REPO / "src"), str(REPO)))
    return subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "webhook", *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_tiny_webhook_run_writes_its_report(tmp_path: Path) -> None:
    done = _bench(
        "--rows", "tg-webhook", "ptb-webhook",
        "--updates", "400", "--chats", "40", "--rate", "400", "--seconds", "1",
        "--kills", "2", "--out", str(tmp_path),
        timeout=230,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    data = json.loads((tmp_path / "webhook.json").read_text())
    results = {(r["row"], r["part"]): r for r in data["results"]}
    assert len(results) == 6
    for r in results.values():
        assert "skipped" not in r, r
    for part in ("throughput", "ack"):
        r = results["tg-webhook", part]
        assert (r["lost"], r["violations"], r["duplicates"]) == (0, 0, 0), r
        assert r["acks"] >= 400 and r["ack_p99_ms"] is not None, r
    assert results["tg-webhook", "throughput"]["cpu_us"] > 0
    crash = results["tg-webhook", "crash"]
    assert len(crash["kills"]) == 2, crash
    assert (crash["lost"], crash["violations"], crash["unacknowledged"]) == (0, 0, 0), crash
    text = (tmp_path / "webhook.md").read_text()
    assert "## Goals" in text and "PTB run_webhook" in text
    assert (tmp_path / "webhook.png").stat().st_size > 10_000


@pytest.mark.timeout(60)
def test_an_unknown_row_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _bench("--rows", "no-such-row", "--out", str(tmp_path), timeout=50)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "no-such-row" in done.stderr
