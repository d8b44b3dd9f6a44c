"""Helpers of the offload tests: is a process alive, wait (on its pidfd) until it is not."""

from __future__ import annotations

import asyncio
import os
import select
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: not gone, and not a zombie (an orphan's zombie may stay until its
    new parent reaps it, and a zombie runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _wait_exit(pid: int, seconds: float) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [], seconds)  # readable once the process has exited
    finally:
        os.close(fd)


async def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` seconds for every process of ``pids`` to exit; those still
    running then."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        await asyncio.to_thread(_wait_exit, pid, max(deadline - time.monotonic(), 0.0))
    return [pid for pid in pids if alive(pid)]
