"""``python -m bench.jobs_rq`` at a tiny size, in its own process: a tgrunner row and a plain
RQ row of the throughput part, and tgrunner's chaos row (workers really SIGKILLed), write
their report, with every job replied to."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.mark.timeout(240)
def test_a_tiny_rq_run_writes_its_report(tmp_path: Path) -> None:
    if not _redis_up():
        if os.environ.get("TGRUNNER_REQUIRE_SERVICES") == "1":
            pytest.fail("redis is not reachable on 127.0.0.1:6379, and it is required")
        pytest.skip("redis is not reachable on 127.0.0.1:6379")
    pythonpath = os.pathsep.join([str(REPO / "src"), str(REPO)])
    done = subprocess.run(
        [sys.executable, "-m", "bench.jobs_rq", "--parts", "throughput", "chaos",
         "--rows", "tg-rq-c1", "rq-simple", "--jobs", "60", "--chaos-rows", "tgrunner",
         "--chaos-jobs", "60", "--kill-every", "0.5", "--out", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=230,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    data = json.loads((tmp_path / "jobs-rq.json").read_text())
    assert [r["key"] for r in data["throughput"]] == ["tg-rq-c1", "rq-simple"]
    for r in data["throughput"]:
        assert r["jobs"] == 60 and r["jobs_per_s"] > 0
    [chaos] = data["chaos"]
    assert (chaos["replied"], chaos["missing"], chaos["not_back"]) == (60, 0, 0)
    assert chaos["duplicates"] <= chaos["abandoned"]
    if chaos["abandoned"]:
        assert chaos["max_wait_s"] < 10.0
    report = (tmp_path / "jobs-rq.md").read_text()
    assert "plain RQ, SimpleWorker" in report and "Chaos" in report
