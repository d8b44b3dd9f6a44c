"""A bot's process tree as ``/proc`` shows it: its descendants, their CPU time and peak RSS.

No psutil: children come from ``/proc/<pid>/task/<tid>/children``, CPU from the ``utime``,
``stime``, ``cutime`` and ``cstime`` fields of ``/proc/<pid>/stat`` (clock ticks, 10 ms).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALL_CPUS", "TreeCpu", "children", "descendants", "tree_cpu", "tree_rss_mb"]

ALL_CPUS = frozenset(os.sched_getaffinity(0))
"""The CPUs this process could use when bench was imported, before it pinned itself."""

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(path: str) -> list[str] | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """The live children of ``pid`` (zombies included until reaped)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, theirs, …), from ``/proc``."""
    out, todo = [], children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children(child)
    return out


@dataclass(frozen=True, slots=True)
class TreeCpu:
    """CPU seconds (user + system) of a bot's process tree at one moment.

    - ``own``: the bot process itself, all its threads (tgrunner: the supervisor);
    - ``main_thread``: its main thread alone (grammY: the thread that polls and distributes);
    - ``tree``: ``own`` + every live descendant + the children already reaped (``cutime``
      and ``cstime`` of the bot process, where a killed worker's CPU ends up).
    """

    own: float
    main_thread: float
    tree: float


def tree_cpu(pid: int) -> TreeCpu | None:
    """The CPU of ``pid`` and its descendants now (None: the bot is gone)."""
    top = _stat(f"/proc/{pid}/stat")
    main = _stat(f"/proc/{pid}/task/{pid}/stat")
    if top is None or main is None:
        return None
    # After the command name: utime, stime, cutime, cstime are fields 14-17 (1-based).
    own = int(top[11]) + int(top[12])
    tree = own + int(top[13]) + int(top[14])
    for child in descendants(pid):
        f = _stat(f"/proc/{child}/stat")
        if f is not None:
            tree += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return TreeCpu(own / _CLK_TCK, (int(main[11]) + int(main[12])) / _CLK_TCK, tree / _CLK_TCK)


def tree_rss_mb(pid: int) -> float | None:
    """Peak RSS (``VmHWM``) summed over the bot and its live descendants, in MB."""
    total = 0
    for p in (pid, *descendants(pid)):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmHWM:\s+(\d+)", status, re.MULTILINE)
        total += int(found.group(1)) if found else 0
    return round(total / 1024, 1) if total else None
