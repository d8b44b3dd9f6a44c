"""``tgrunner run`` freezes its heap once everything the settings need is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import gc, sys
from tgrunner.cli.run import settle_heap
from tgrunner.settings import Settings
settle_heap(Settings(metrics={metrics!r}))
loaded = "prometheus_client" in sys.modules
unfrozen = sum(type(o).__module__.startswith("prometheus_client") for o in gc.get_objects())
print(loaded, unfrozen, gc.get_freeze_count() > 0)
"""


def probe(metrics: str | None) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(metrics=metrics)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.split()


@pytest.mark.timeout(60)
def test_metrics_are_imported_before_the_heap_is_frozen() -> None:
    # Imported after the freeze, prometheus_client's objects would be traversed by every full
    # collection for as long as the bot runs (it cost --metrics several % of throughput).
    assert probe("127.0.0.1:9090") == ["True", "0", "True"]


@pytest.mark.timeout(60)
def test_without_metrics_prometheus_client_is_not_imported() -> None:
    assert probe(None) == ["False", "0", "True"]
