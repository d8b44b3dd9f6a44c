"""``python -m bench --scenario flood``: the record analysis on real calls to FakeTelegram
(delivered, lost, duplicates, order, 429s), the report builder on a canned result (goals met
and NOT met, every table, the chart, rebuilt from its JSON), and a ``--quick`` run in its own
process, whose rows hold in either build: before issue 13's flood control (the ``--flood``
rows skipped with the reason, today's 429 losses measured) and after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench import flood_parts, flood_report
from tgrunner.testing import FakeTelegram, FloodLimits

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(30)
async def test_deliveries_read_the_record_per_chat() -> None:
    async with FakeTelegram(flood=FloodLimits(per_chat_per_second=0.1, private_burst=4)) as tg:
        a, b = 10_000_000, 10_000_001
        flood_parts.register(tg, a)
        flood_parts.register(tg, b)
        d = flood_parts.Deliveries(tg, len(tg.requests))
        for i in range(3):
            d.expect(f"a{i}", a, i, time.time(), "chats")
            d.expect(f"b{i}", b, i, time.time(), "chats")
        async with aiohttp.ClientSession() as session:
            url = f"{tg.api_url}/bot{tg.token}/sendMessage"
            # a: a0, a2, a1 (out of order), a2 again (a duplicate), then a 429 (burst of 4).
            # b: b0, b1 only; and a text nobody expects.
            for chat, text in ((a, "a0"), (a, "a2"), (a, "a1"), (a, "a2"), (a, "a0"),
                               (b, "b0"), (b, "b1"), (b, "stray")):  # fmt: skip
                async with session.post(url, json={"chat_id": chat, "text": text}) as r:
                    await r.read()

        def done() -> bool:
            return d.complete("chats")

        ended = await flood_parts.drain(tg, d, done, quiet=0.2, deadline=1e18)
    assert ended == "no send for 0.2 s"
    assert d.delivered == {"chats": 5} and d.expected == {"chats": 6}
    assert (d.duplicates, d.violations) == (1, 1)
    assert d.floods == {"chats": 1} and d.errors == {"chats": 1}  # the 429, the stray text
    assert d.chats_intact("chats") == 0  # a: out of order; b: b2 missing, a stray text
    assert len(d.latencies_ms("chats")) == 5


def _echo(row: str, **measures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "row": row, "label": f"{row} label", "framework": "ptb" if "ptb" in row else "tgrunner",
        "part": "echo3", "flood": None, "note": "", "expected": 6000, "delivered": 6000,
        "lost": 0, "duplicates": 0, "violations": 0, "floods": 0, "errors": 0, "chats": 200,
        "chats_intact": 200, "seconds": 28.0, "ideal_seconds": 27.0, "throughput": 214.3,
        "allowed_rate": 222.2, "share": 0.964, "ended": "all delivered", "cpu_us": 150.0,
    }  # fmt: skip
    return {**base, **measures}


def _storm(row: str, calm_p99: float, storm_p99: float, **measures: Any) -> dict[str, Any]:
    def phase(p99: float) -> dict[str, Any]:
        return {"messages": 740, "delivered": 740, "p50_ms": 1.0, "p99_ms": p99,
                "max_ms": p99 * 2, "floods": 0, "errors": 0, "ended": "all delivered",
                "pushed": 750, "lost": 0}  # fmt: skip

    base: dict[str, Any] = {
        "row": row, "label": f"{row} label", "framework": "ptb" if "ptb" in row else "tgrunner",
        "part": "storm", "flood": None, "note": "", "chats": 1000, "stormed_chats": 10,
        "calm": phase(calm_p99), "storm": phase(storm_p99),
        "p99_rise_ms": round(storm_p99 - calm_p99, 2), "stormed_messages": 7,
        "stormed_delivered": 7, "stormed_floods": 21, "stormed_ended": "all delivered",
        "duplicates": 0, "violations": 0,
    }  # fmt: skip
    return {**base, **measures}


@pytest.mark.timeout(60)
def test_the_report_says_which_goals_were_met(tmp_path: Path) -> None:
    results = [
        _echo("tg-telegram", floods=3),
        _echo("tg-reactive", floods=5400, share=0.95),
        _echo("tg-off", lost=5000, delivered=1000, floods=200, share=0.166),
        _echo("ptb-limiter", violations=900, floods=40, share=0.14, chats_intact=3),
        _storm("tg-reactive", 2.0, 3.5),
        _storm("ptb-limiter", 3.0, 10_100.0, stormed_delivered=0),
        {"row": "tg-broadcast", "label": "tg-broadcast label", "framework": "tgrunner",
         "part": "broadcast", "flood": None, "note": "", "skipped": "not in this build"},
    ]  # fmt: skip
    info = {"date": "2026-01-01 00:00 UTC", "cpu": "test cpu, nproc 2"}
    plans = {p: f"{p} plan" for p in flood_report.TITLES}
    flood_report.write(tmp_path, results, info, plans, "python -m bench --scenario flood")
    text = (tmp_path / "flood.md").read_text()
    assert "`--flood telegram`: **3** 429s (goal 0) and **96.4%**" in text
    assert "lost 0: **NOT met**" in text
    assert "order violations **0** (goal: every message once and in order): **met**" in text
    assert "`--flood off`: 200 429s, lost **5,000** of 6,000" in text
    assert "a rise of **1.5 ms** (goal ≤ 5 ms): **met**" in text
    assert "a rise of **10,097.0 ms**; the stormed chats' 7 answers: 0 delivered" in text
    for title in flood_report.TITLES.values():
        assert f"## {title}" in text
    assert "| tg-broadcast label | skipped: not in this build |" in text
    assert "| 900 | 3 / 200 |" in text  # PTB's order violations, chats intact
    assert (tmp_path / "flood.png").stat().st_size > 10_000
    # The report can be written again from the JSON alone.
    (tmp_path / "flood.md").unlink()
    assert flood_report.main([str(tmp_path)]) == 0
    assert (tmp_path / "flood.md").read_text() == text


def _bench(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    pythonpath = os.pathsep.join((str(REPO / "src"), str(REPO)))
    return subprocess.run(
        [sys.executable, "-m", "bench", "--scenario", "flood", *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_quick_flood_run_writes_its_report(tmp_path: Path) -> None:
    done = _bench("--quick", "--out", str(tmp_path), timeout=590)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    data = json.loads((tmp_path / "flood.json").read_text())
    by = {(r["row"], r["part"]): r for r in data["results"]}
    assert set(by) == {
        *((row, part) for row in ("tg-telegram", "tg-reactive", "tg-noflag", "ptb-limiter")
          for part in ("echo3", "storm")),
        ("tg-off", "echo3"), ("tg-broadcast", "broadcast"),
    }  # fmt: skip
    flagged = "skipped" not in by["tg-reactive", "echo3"]
    for (row, part), r in by.items():
        if row in ("tg-telegram", "tg-reactive", "tg-off") and not flagged:
            assert "--flood" in r["skipped"], r
        elif part == "broadcast" and "skipped" in r:
            assert "tgrunner.flood.broadcast is missing" in r["skipped"], r
        elif part == "broadcast":  # resumed after the SIGKILL: at most what was in flight twice
            assert r["killed"] and r["before_kill"] < r["chats"], r
            assert r["lost"] == 0 and r["duplicates"] <= r["answered_last_second"], r
        else:
            assert "skipped" not in r, r
            assert r["duplicates"] == 0, r
    noflag, ptb = by["tg-noflag", "echo3"], by["ptb-limiter", "echo3"]
    if flagged:  # the default is reactive: everything once, in order
        for r in (noflag, by["tg-reactive", "echo3"]):
            assert (r["lost"], r["violations"]) == (0, 0), r
        assert by["tg-telegram", "echo3"]["lost"] == 0
    else:  # no flood control: the second message's answers of each chat hit 429 and are lost
        assert noflag["floods"] > 0 and noflag["lost"] > 0 and noflag["violations"] == 0
    assert ptb["delivered"] + ptb["lost"] == ptb["expected"] == 120 and ptb["share"] > 0
    for (row, part), r in by.items():
        if part == "storm" and "skipped" not in r:
            assert r["calm"]["p99_ms"] is not None and r["storm"]["p99_ms"] is not None, r
            assert r["stormed_messages"] >= 1 and r["stormed_floods"] >= 1, r
            if row.startswith("tg-"):
                assert r["calm"]["lost"] == r["storm"]["lost"] == 0, r
    text = (tmp_path / "flood.md").read_text()
    assert "## Goals" in text and "PTB AIORateLimiter" in text
    assert (tmp_path / "flood.png").stat().st_size > 10_000


@pytest.mark.timeout(60)
def test_an_unknown_row_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _bench("--rows", "no-such-row", "--out", str(tmp_path), timeout=50)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "no-such-row" in done.stderr
