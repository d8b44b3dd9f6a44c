"""The test run sums its skips up by place, instead of printing one line per skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_skips_are_grouped_by_place_not_listed_one_by_one() -> None:
    # test_generate skips ~120 Bot API 10.1 checks that PTB 22.8 cannot make, from 3 places.
    command = [sys.executable, "-m", "pytest", "tests/testing/test_generate.py"]
    out = subprocess.run(
        [*command, "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-2000:]
    text = out.stdout
    assert "SKIPPED [" not in text
    _, _, grouped = text.partition("skipped, by place")
    assert grouped, text[-2000:]
    lines = [line for line in grouped.splitlines()[1:] if " × " in line]
    assert 1 <= len(lines) <= 5
    total = sum(int(line.split(" × ")[0]) for line in lines)
    assert f" {total} skipped" in grouped.splitlines()[-1]
    assert all("python-telegram-bot 22.8" in line for line in lines)
