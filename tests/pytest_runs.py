"""Running pytest in a subprocess, as a user's project would: tgrunner's plugin loaded by its
``pytest11`` entry point when the installed tgrunner declares it, else with ``-p`` (as in a
checkout whose editable install predates the entry point)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import tgrunner

PLUGIN = "tgrunner.testing.pytest_plugin"
SOURCE = str(Path(tgrunner.__file__).parents[1])


def entry_point_installed() -> bool:
    """Whether the installed distribution registers the plugin (pytest then loads it)."""
    return any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))


def plugin_args() -> list[str]:
    # Passing -p as well when the entry point loads it would register the plugin twice.
    return [] if entry_point_installed() else ["-p", PLUGIN]


def run_pytest(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` from ``cwd``, importing this checkout's tgrunner, leaving no
    cache or bytecode behind; gives the finished process (stdout, stderr, returncode)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (SOURCE, os.environ.get("PYTHONPATH")) if p),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider", "-q"]
    return subprocess.run(
        [*command, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
