"""A module that raises while it is imported (for the trimmed-traceback test)."""

from __future__ import annotations


def compute() -> float:
    return 1 / 0


RATIO = compute()
