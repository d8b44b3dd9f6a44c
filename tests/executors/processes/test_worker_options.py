"""The executor's options and its bad input: one clear ConfigError each."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tgrunner.errors import ConfigError
from tgrunner.executors.processes import (
    ProcessExecutor,
    WorkerOptions,
    available_cpus,
    resolve_workers,
    share_of,
    slot_for,
    stable_hash,
)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", 0, -3, True])
def test_bad_worker_counts_are_refused_in_one_line(value: object) -> None:
    with pytest.raises(ConfigError, match="--workers takes a whole number") as info:
        resolve_workers(value)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_worker_counts_and_auto() -> None:
    assert resolve_workers("4") == 4
    assert resolve_workers(3) == 3
    assert resolve_workers("auto") == resolve_workers("AUTO") == available_cpus() >= 1


def test_each_worker_gets_its_share_and_too_many_workers_are_refused() -> None:
    assert share_of(500, 2) == 250
    assert share_of(5, 2) == 3
    assert share_of(4, 4) == 1
    with pytest.raises(ConfigError, match="more than the concurrency"):
        share_of(3, 4)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workers", 0),
        ("heartbeat_timeout", 0),
        ("startup_grace", -1),
        ("kill_grace", float("inf")),
        ("stop_timeout", "10"),
    ],
)
def test_bad_options_are_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        WorkerOptions(**{field: value})  # type: ignore[arg-type]


def test_defaults() -> None:
    options = WorkerOptions()
    assert (options.heartbeat_timeout, options.startup_grace) == (10.0, 60.0)
    assert options.heartbeat_interval == 2.0


def test_the_executor_needs_an_import_string_and_json_options() -> None:
    with pytest.raises(ConfigError, match="import string"):
        ProcessExecutor("mybot", token="1:a", share=1)
    with pytest.raises(ConfigError, match="at least 1"):
        ProcessExecutor("mybot:router", token="1:a", share=0)
    with pytest.raises(ConfigError, match="JSON values"):
        ProcessExecutor("mybot:router", token="1:a", share=1, frontend_options={"x": object()})


def test_routing_is_stable_and_spreads_chats() -> None:
    # The same numbers in every process and run: never Python's salted hash().
    assert stable_hash("c:1") == 3_248_976_424
    assert stable_hash(b"c:1") == stable_hash("c:1")
    assert stable_hash(5) == stable_hash("5")
    counts = [0, 0]
    for chat in range(1000):
        counts[slot_for(f"c:{chat}", 2)] += 1
    assert min(counts) > 400


@pytest.mark.slow
def test_the_worker_module_run_by_hand_says_so() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tgrunner.executors.processes.worker"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "started by the supervisor" in proc.stderr
    assert "Traceback" not in proc.stderr
