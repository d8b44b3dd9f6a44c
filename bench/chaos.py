"""The chaos part of the workers scenario: SIGKILL a ready worker every few seconds, and
measure from the supervisor's log and FakeTelegram's record what each death cost.

- **Which process**: a child of the bot process (only our own bot's children, by PID) that the
  supervisor has logged as ready (``worker S (pid P) ready in X s``) and that has not been
  killed already; one of them at random (seeded). A worker still starting is never killed: a
  start that fails three times in a row is the crash-loop guard, not a death under load.
- **Detected**: the supervisor's ``worker S (pid P) was killed by SIGKILL with K update(s) in
  flight`` line; its time minus the moment of the kill. K, the dead process's updates that
  were sent to it and not reported done, bounds the duplicates that death may cause.
- **Ready**: the next ``worker S (pid Q) ready`` line of that slot after the death.
- **Serving**: the first ``sendMessage`` FakeTelegram records, after the death was detected,
  to a chat that sticky routing sends to slot S (CRC-32 of the chat's key ``c:<chat id>``,
  modulo the worker count: :func:`tgrunner.executors.processes.slot_for`).

Log times are the supervisor's ``asctime`` (local time, millisecond resolution); kill times
are this process's ``time.time()``; both read the same clock.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.proctree import children
from tgrunner.executors.processes import slot_for
from tgrunner.testing import FakeTelegram

__all__ = ["Killer", "analyse", "reply_times", "timeline"]

_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
_READY = re.compile(_STAMP + r".*?worker (\d+) \(pid (\d+)\) ready in ", re.MULTILINE)
_DIED = re.compile(
    _STAMP + r".*?worker (\d+) \(pid (\d+)\) was killed by (\w+) with (\d+) update\(s\) in flight",
    re.MULTILINE,
)
BIN = 0.1  # seconds per bar of the timeline


def _when(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass(frozen=True, slots=True)
class LogEvent:
    at: float
    slot: int
    pid: int
    in_flight: int = 0


def ready_events(text: str) -> list[LogEvent]:
    """Every ``ready`` line of the supervisor's log, in order."""
    return [LogEvent(_when(m[1]), int(m[2]), int(m[3])) for m in _READY.finditer(text)]


def death_events(text: str) -> list[LogEvent]:
    """Every death of a ready worker in the supervisor's log, with its in-flight count."""
    return [LogEvent(_when(m[1]), int(m[2]), int(m[3]), int(m[5])) for m in _DIED.finditer(text)]


@dataclass(slots=True)
class Killer:
    """Kills one ready worker of bot ``pid`` every ``every`` seconds while a load runs."""

    pid: int
    log: Path
    every: float
    seed: int = 0
    kills: list[tuple[int, float]] = field(default_factory=list)  # (pid, time.time())
    missed: int = 0  # moments when no worker was ready to be killed
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def run_until(self, load: asyncio.Future[Any]) -> None:
        """Kill every ``every`` seconds until ``load`` is done."""
        while True:
            # Pacing the kills by the clock is the point here, not a synchronisation.
            done, _ = await asyncio.wait({load}, timeout=self.every)
            if done:
                return
            self.kill_one()

    def kill_one(self) -> int | None:
        """SIGKILL one ready, live worker at random; return its pid (None: none was ready)."""
        text = self.log.read_text(errors="replace")
        ready = {e.pid for e in ready_events(text)}
        killed = {pid for pid, _ in self.kills}
        candidates = sorted((ready & set(children(self.pid))) - killed)
        if not candidates:
            self.missed += 1
            return None
        victim = self._rng.choice(candidates)
        at = time.time()
        os.kill(victim, signal.SIGKILL)
        self.kills.append((victim, at))
        return victim


def reply_times(tg: FakeTelegram, since: float) -> list[tuple[float, int]]:
    """``(Unix time, chat id)`` of every successful sendMessage recorded from ``since`` on."""
    out = []
    for r in tg.requests:
        if r.method == "sendMessage" and r.status == 200 and r.time >= since:
            try:
                out.append((r.time, int(r.params.get("chat_id", 0))))
            except (TypeError, ValueError):
                continue
    return out


def timeline(replies: list[tuple[float, int]], since: float) -> list[int]:
    """Replies per :data:`BIN` seconds from ``since``."""
    if not replies:
        return []
    bins = [0] * (int((max(t for t, _ in replies) - since) / BIN) + 1)
    for t, _ in replies:
        bins[int((t - since) / BIN)] += 1
    return bins


def _ms(start: float, end: float | None) -> float | None:
    return None if end is None else round((end - start) * 1000, 1)


def analyse(
    killer: Killer, log: Path, replies: list[tuple[float, int]], workers: int, since: float
) -> dict[str, Any]:
    """Per kill: when (seconds from ``since``, the load's start), slot, in-flight count, and
    the detection, replacement-ready and serving delays (ms); and the totals."""
    text = log.read_text(errors="replace")
    deaths = {e.pid: e for e in death_events(text)}
    readies = ready_events(text)
    slot_of: dict[int, int] = {}
    kills = []
    for pid, at in killer.kills:
        death = deaths.get(pid)
        entry: dict[str, Any] = {"pid": pid, "at_s": round(at - since, 2), "slot": None,
                                 "in_flight": None, "detected_ms": None, "ready_ms": None,
                                 "serving_ms": None, "new_pid": None}  # fmt: skip
        if death is not None:
            entry.update(slot=death.slot, in_flight=death.in_flight,
                         detected_ms=_ms(at, death.at))  # fmt: skip
            nxt = next((e for e in readies if e.slot == death.slot and e.at >= death.at), None)
            if nxt is not None:
                entry.update(ready_ms=_ms(at, nxt.at), new_pid=nxt.pid)
            served = None
            for t, chat in replies:
                if t < death.at:
                    continue
                slot = slot_of.get(chat)
                if slot is None:
                    slot = slot_of[chat] = slot_for(f"c:{chat}", workers)
                if slot == death.slot:
                    served = t
                    break
            entry["serving_ms"] = _ms(at, served)
        kills.append(entry)
    seen = [k for k in kills if k["detected_ms"] is not None]
    return {
        "kills": kills,
        "missed": killer.missed,
        "undetected": len(kills) - len(seen),
        "in_flight_total": sum(k["in_flight"] for k in seen),
        "max_detected_ms": max((k["detected_ms"] for k in seen), default=None),
        "max_serving_ms": max(
            (k["serving_ms"] for k in seen if k["serving_ms"] is not None), default=None
        ),
        "unserved": sum(1 for k in seen if k["serving_ms"] is None),
    }
