"""``python -m bench --scenario workers`` at a tiny size, in its own process: the CPU-bound
``--workers 2`` row and the chaos row (a worker really SIGKILLed) write their report, with
nothing lost, per-chat order kept, each death seen in the supervisor's log; grammY's
``distribute`` row too when Node and its packages are installed. And a bad row name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "bench" / ".scratch" / "node_modules"

pytestmark = pytest.mark.slow


def _bench(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join(p for p in (str(REPO / "src"), str(REPO)) if p)
    return subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "workers", "--no-install", *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(240)
def test_a_tiny_workers_run_writes_its_report(tmp_path: Path) -> None:
    rows = ["tg-w2", "chaos-w2"]
    grammy = shutil.which("node") is not None and (NODE_MODULES / "@grammyjs").is_dir()
    if grammy:
        rows.append("grammy-distribute")
    # 1,500 updates: the supervisor's CPU is read in 10 ms clock ticks, and 300 updates'
    # worth (about 25 us each) could round to none.
    done = _bench(
        "--rows", *rows,
        "--updates", "1500", "--chats", "30",
        "--rate", "400", "--seconds", "3.5", "--kill-every", "1",
        "--out", str(tmp_path),
        timeout=230,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    data = json.loads((tmp_path / "workers.json").read_text())
    results = {r["row"]: r for r in data["results"]}
    assert set(results) == set(rows)
    for r in results.values():
        assert "skipped" not in r, r
        assert r["lost"] == 0, r
    w2 = results["tg-w2"]
    assert w2["violations"] == 0 and w2["duplicates"] == 0
    # The whole tree's CPU holds at least the spins of 1 ms, one per update.
    assert w2["cpu_us"] >= 900 and w2["workers_us"] > w2["supervisor_us"] > 0
    chaos = results["chaos-w2"]
    kills = chaos["chaos"]["kills"]
    assert len(kills) >= 2, chaos
    assert chaos["violations"] == 0
    assert chaos["duplicates"] <= chaos["chaos"]["in_flight_total"]
    for kill in kills:
        assert kill["detected_ms"] is not None and kill["detected_ms"] < 500, kill
        assert kill["serving_ms"] is not None, kill
    if grammy:
        assert results["grammy-distribute"]["workers"] == 2
    text = (tmp_path / "workers.md").read_text()
    assert "--workers 2" in text and "| kill | at s |" in text and "## Scaling to N cores" in text
    assert (tmp_path / "workers.png").stat().st_size > 10_000


@pytest.mark.timeout(60)
def test_an_unknown_row_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _bench("--rows", "no-such-row", "--out", str(tmp_path), timeout=50)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "no-such-row" in done.stderr
