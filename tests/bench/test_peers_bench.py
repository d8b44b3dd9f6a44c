"""``python -m bench --scenario a`` at a tiny size, in its own process: the native row and the
same bot with ``--metrics`` write a report that says what the metrics cost."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _bench(out: Path, *extra: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Run the two rows at the quick size; their results by row, and the report."""
    pythonpath = os.pathsep.join((str(REPO / "src"), str(REPO)))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "a", "--rows", "native", "native-metrics",
         *extra, "--quick", "--no-install", "--out", str(out)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True, text=True, timeout=220,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = {r["row"]: r for r in json.loads((out / "peers.json").read_text())["results"]}
    for key in ("native", "native-metrics"):
        assert (results[key]["lost"], results[key]["violations"]) == (0, 0), results[key]
    return results, (out / "peers.md").read_text()


@pytest.mark.timeout(240)
def test_the_report_says_what_metrics_cost(tmp_path: Path) -> None:
    results, report = _bench(tmp_path)
    line = re.search(
        r"`--metrics` costs \*\*(-?[\d.]+)%\*\* of throughput .*\*\*(met|NOT met)\*\*", report
    )
    assert line, report
    cost = 1 - results["native-metrics"]["throughput"] / results["native"]["throughput"]
    assert float(line[1]) == pytest.approx(cost * 100, abs=0.06)


@pytest.mark.timeout(240)
def test_two_rows_side_by_side_take_turns_and_compare_their_cpu(tmp_path: Path) -> None:
    results, report = _bench(tmp_path, "--side-by-side")
    assert results["native"]["together"] == results["native-metrics"]["together"] == 0
    line = re.search(r"`--metrics` costs \*\*(-?[\d.]+)%\*\* .* side by side", report)
    assert line, report
    cost = 1 - results["native"]["cpu_us"] / results["native-metrics"]["cpu_us"]
    assert float(line[1]) == pytest.approx(cost * 100, abs=0.06)


@pytest.mark.timeout(30)
def test_side_by_side_needs_rows_in_twos() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "a", "--rows", "native", "--side-by-side",
         "--quick", "--no-install"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO / "src"), str(REPO)))},
        capture_output=True, text=True, timeout=25,
    )  # fmt: skip
    assert done.returncode == 2
    assert "two at a time" in done.stderr
