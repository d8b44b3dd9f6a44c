"""Skipped tests, summed up by place instead of one line each.

pytest's ``-rs`` prints one line per skip: 120 lines for the Bot API 10.1 types that
python-telegram-bot 22.8 does not know yet, which reads like breakage. This plugin prints one
line per place that skipped (file and line), with the count and the first reason; services
that are down still show, since each has its own place.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

__all__ = ["group_skips"]


def group_skips(reports: list[Any], root: Path | None = None) -> list[str]:
    """One line per skipping place, most frequent first: ``N × path:line: first reason``
    (paths relative to ``root`` when under it)."""
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for report in reports:
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            path, line, reason = longrepr
            if root is not None and Path(path).is_relative_to(root):
                path = str(Path(path).relative_to(root))
            place = f"{path}:{line}"
        else:
            place, reason = report.nodeid, str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        counts[place] += 1
        first.setdefault(place, reason)
    lines = []
    for place, n in counts.most_common():
        more = f" (and {n - 1} like it)" if n > 1 else ""
        lines.append(f"{n} × {place}: {first[place]}{more}")
    return lines


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the grouped skips after pytest's own summary."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.write_sep("-", f"{len(skipped)} skipped, by place")
    for line in group_skips(skipped, terminalreporter.config.rootpath):
        terminalreporter.write_line(line)
