"""The RQ rows of ``python -m bench --scenario jobs``: their goals on canned results, and a
tiny real run in its own process (the RQ backend and plain RQ, throughput and chaos, workers
really SIGKILLed), and ``python -m bench.jobs_rq`` (the bot's side alone)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import jobs_rq

REPO = Path(__file__).resolve().parents[2]


def _row(row: str, part: str, **figures: Any) -> dict[str, Any]:
    return {"row": row, "label": row, "backend": "rq", "part": part, "note": "", **figures}


def test_the_goals_compare_with_plain_rq() -> None:
    results = [
        _row("rq", "throughput", jobs_per_s=900),
        _row("rq-simple", "throughput", jobs_per_s=1000),
        _row("rq-fork", "throughput", jobs_per_s=60),
        _row("rq-chaos", "chaos", jobs=300, kills=2, lost=0, duplicates=0, cut_runs=10,
             max_wait_s=4.8, states={"finished": 300}),
        _row("rq-plain-chaos", "chaos", jobs=300, lost=2, max_wait_s=None, gave_up_after_s=60.0),
    ]  # fmt: skip
    found = jobs_rq.goals(results)
    assert [met for _, met in found] == [True, True, True]
    assert "0.90× plain RQ's SimpleWorker" in found[0][0]
    assert "2 were not back 60 s after the last kill" in found[2][0]
    results[0]["jobs_per_s"] = 899
    assert not jobs_rq.goals(results)[0][1]


def _redis() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            return
    except OSError:
        pass
    if os.environ.get("TGRUNNER_REQUIRE_SERVICES") == "1":
        pytest.fail("redis is not reachable on 127.0.0.1:6379, and it is required")
    pytest.skip("redis is not reachable on 127.0.0.1:6379")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=200)  # fmt: skip


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.timeout(240)
def test_a_tiny_real_run(tmp_path: Path) -> None:
    _redis()
    done = _run("bench", "--scenario", "jobs", "--quick", "--updates", "200",
                "--rows", "rq", "rq-simple", "rq-chaos", "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {r["row"]: r for r in json.loads((tmp_path / "jobs.json").read_text())["results"]}
    assert set(results) == {"rq", "rq-simple", "rq-chaos"}
    for key in ("rq", "rq-simple"):
        assert "skipped" not in results[key], results[key]
        assert results[key]["jobs_per_s"] > 0 and results[key]["exit_codes"] == [0, 0]
    chaos = results["rq-chaos"]
    assert (chaos["replied"], chaos["lost"], chaos["kills"]) == (300, 0, chaos["kills"])
    assert chaos["kills"] >= 1 and chaos["duplicates"] <= chaos["cut_runs"]
    assert chaos["max_wait_s"] is None or chaos["max_wait_s"] <= 10
    assert "RQ backend" in (tmp_path / "jobs.md").read_text()


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.timeout(120)
def test_the_bot_side_alone(tmp_path: Path) -> None:
    _redis()
    done = _run("bench.jobs_rq", "--jobs", "200", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (tmp_path / "jobs-rq-enqueue.md").read_text()
    assert text.count("| tgrunner RQQueue") == 2 and "blocking the loop" in text
