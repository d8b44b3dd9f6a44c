"""The report's figure of what ``--metrics`` costs: one pair of runs compares the two, and
several pairs, run back to back on a host whose speed drifts, are judged on their median."""

from __future__ import annotations

import re
from typing import Any

import pytest
from bench.report import _metrics_cost


def run(row: str, throughput: float, cpu_us: float = 30.0) -> dict[str, Any]:
    return {"row": row, "throughput": throughput, "cpu_us": cpu_us}


def cost_of(lines: list[str]) -> tuple[float, str]:
    found = re.search(r"costs \*\*(-?[\d.]+)%\*\*.*\*\*(met|NOT met)\*\*", "\n".join(lines))
    assert found, lines
    return float(found[1]), found[2]


@pytest.mark.timeout(10)
def test_one_pair_compares_its_two_runs() -> None:
    lines = _metrics_cost([run("native", 20_000), run("native-metrics", 19_000, 31.5)])
    assert cost_of(lines) == (5.0, "NOT met")
    assert "+1.5 µs" in lines[-1]


@pytest.mark.timeout(10)
def test_pairs_on_a_drifting_host_are_judged_on_their_median() -> None:
    rows = []
    for speed in (30_000, 27_000, 24_000, 21_000, 18_000):  # the host slows down run by run
        rows += [run("native", speed), run("native-metrics", speed * 0.98)]
    rows[-1] = run("native-metrics", 18_000 * 0.90)  # one pair hit by noise
    lines = _metrics_cost(rows)
    assert cost_of(lines) == (2.0, "met")
    assert "median of 5 pairs" in lines[-1]
    assert "the rows' medians: 23,520 against 24,000 updates/s, 2.0%" in lines[-1]


@pytest.mark.timeout(10)
def test_nothing_is_said_without_both_rows() -> None:
    assert _metrics_cost([run("native", 20_000)]) == []
    assert _metrics_cost([run("native", 20_000), {"row": "native-metrics", "skipped": "x"}]) == []


@pytest.mark.timeout(10)
def test_pairs_run_side_by_side_are_judged_on_their_cpu_ratio() -> None:
    # Each pair took turns on one core: its throughputs mean little, its CPU costs compare.
    rows = []
    for pair, (plain, metered) in enumerate([(40.0, 40.8), (60.0, 61.2), (50.0, 51.0)]):
        for row, cpu in (("native", plain), ("native-metrics", metered)):
            rows.append({**run(row, 5_000, cpu), "together": pair})
    rows.append({**run("native-metrics", 5_000, 90.0), "together": 7})  # its peer is missing
    lines = _metrics_cost(rows)
    cost, verdict = cost_of(lines)
    assert verdict == "met"
    assert cost == pytest.approx(100 * (1 - 50.0 / 51.0), abs=0.05)
    assert "median of 3 pairs run side by side" in lines[-1]
    assert "+1.00 µs" in lines[-1]
