"""The supervisor's view of its worker processes' metrics, without ``PROMETHEUS_MULTIPROC_DIR``.

With ``--workers N`` handlers and their API calls run in worker processes, while the supervisor
serves ``/metrics``. Each worker keeps its own :class:`~tgrunner.observability.metrics.Metrics` and
sends :meth:`~tgrunner.observability.metrics.Metrics.snapshot` to the supervisor every second or so
and as it exits; the supervisor hands each one to :meth:`Aggregator.update`::

    metrics = Metrics(frontend="aiogram")          # the supervisor's own
    aggregator = Aggregator(metrics)               # now metrics.registry exposes the sum
    aggregator.update(slot, pid, snapshot_bytes)   # for each snapshot from a worker
    aggregator.process_gone(slot, pid)             # when that worker process has died

What ``/metrics`` shows is the supervisor's own values plus, for each worker slot, the latest
snapshot of its current process plus the last snapshots of its dead processes. So a restarted
worker's counters stay monotonic: its new process starts from 0, and the old one's last values
are folded into the slot's base.

Lost at most one interval: increments a process made after its last snapshot reached the
supervisor are lost when it dies (a SIGKILL sends no final snapshot). A snapshot of a dead
process that arrives late (after :meth:`~Aggregator.process_gone`, or after its successor's
first snapshot) still counts, for the last 16 dead processes of a slot.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tgrunner.observability._families import BY_NAME, HIST_LEN, Labels, Value, Values, add_into
from tgrunner.observability._families import build_families as _build_families
from tgrunner.observability.metrics import SNAPSHOT_VERSION, Metrics

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["Aggregator"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Slot:
    """One worker slot: its current process, its dead processes' folded totals."""

    pid: int | None = None
    last: Values = field(default_factory=dict)
    base: Values = field(default_factory=dict)
    dead: OrderedDict[int, Values] = field(default_factory=OrderedDict)


class Aggregator:
    """Merges worker snapshots into the exposition of the supervisor's ``metrics``.

    Building one replaces ``metrics`` in ``metrics.registry`` by this collector, which yields
    ``metrics``' own families with the workers' values added, one family per name.

    - ``remember_dead``: dead processes per slot whose late snapshots still count, default 16.

    Methods are for one thread (the supervisor's event loop), as for :class:`Metrics`.
    """

    def __init__(self, metrics: Metrics, *, remember_dead: int = 16) -> None:
        self._metrics = metrics
        self._remember = remember_dead
        self._slots: dict[int, _Slot] = {}
        metrics.registry.unregister(metrics)
        metrics.registry.register(self)

    def update(self, slot: int, pid: int, snapshot: bytes) -> None:
        """Take ``snapshot`` (from :meth:`Metrics.snapshot`) of process ``pid`` in ``slot``.

        ``pid`` identifies the process: its pid, or any number its slot never reuses. A new
        ``pid`` in a slot means the previous process is gone (as :meth:`process_gone`). A
        snapshot that cannot be read is logged and ignored.
        """
        values = _parse(snapshot)
        if values is None:
            log.warning("a metrics snapshot of worker slot %s (pid %s) is unreadable", slot, pid)
            return
        state = self._slots.setdefault(slot, _Slot())
        if pid == state.pid:
            _raise_to(state.last, values)
        elif pid in state.dead:
            add_into(state.base, _raise_to(state.dead[pid], values))
        else:
            self._fold(state)
            state.pid = pid
            state.last = values

    def process_gone(self, slot: int, pid: int) -> None:
        """Process ``pid`` of ``slot`` has died: its last snapshot joins the slot's base.

        Safe to call twice, or for a process that never sent a snapshot.
        """
        state = self._slots.get(slot)
        if state is not None and state.pid == pid:
            self._fold(state)

    def _fold(self, state: _Slot) -> None:
        if state.pid is None:
            return
        add_into(state.base, state.last)
        state.dead[state.pid] = state.last
        while len(state.dead) > self._remember:
            state.dead.popitem(last=False)
        state.pid = None
        state.last = {}

    def values(self) -> Values:
        """The supervisor's own counters and histograms plus every slot's (copies)."""
        total = self._metrics.monotonic_values()
        for state in self._slots.values():
            add_into(total, state.base)
            add_into(total, state.last)
        return total

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's Collector protocol: the merged families."""
        values = self.values()
        values.update(self._metrics.gauge_values())
        return _build_families(values)

    def describe(self) -> list[Metric]:
        """No families up front, so registering never collects (prometheus_client protocol)."""
        return []


def _raise_to(have: Values, new: Values) -> Values:
    """Raise ``have`` to the item-wise maximum of ``have`` and ``new``; give what it grew by.

    Snapshots hold totals, so ``new`` is normally at or above ``have`` everywhere; taking the
    maximum keeps the exposition monotonic even if one is not.
    """
    grown: Values = {}
    for name, series in new.items():
        mine = have.setdefault(name, {})
        for labels, value in series.items():
            old = mine.get(labels)
            delta: Value
            if isinstance(value, list):
                base = old if isinstance(old, list) else [0.0] * len(value)
                delta = [max(v - b, 0.0) for v, b in zip(value, base, strict=True)]
                mine[labels] = [b + d for b, d in zip(base, delta, strict=True)]
                if not any(delta):
                    continue
            else:
                start = old if isinstance(old, int | float) else 0
                delta = max(value - start, 0)
                mine[labels] = start + delta
                if not delta:
                    continue
            grown.setdefault(name, {})[labels] = delta
    return grown


def _parse(snapshot: bytes) -> Values | None:
    """The values of a snapshot, keeping only well-formed counters and histograms."""
    try:
        data = orjson.loads(snapshot)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
        return None
    raw = data.get("values")
    if not isinstance(raw, dict):
        return None
    values: Values = {}
    for name, series in raw.items():
        family = BY_NAME.get(name)
        if family is None or family.kind == "gauge" or not isinstance(series, list):
            continue
        kept = values.setdefault(name, {})
        for entry in series:
            item = _entry(entry, len(family.labels), family.kind == "histogram")
            if item is not None:
                kept[item[0]] = item[1]
    return values


def _entry(entry: Any, arity: int, histogram: bool) -> tuple[Labels, Value] | None:
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)):
        return None
    labels, value = entry
    if len(labels) != arity or not all(isinstance(label, str) for label in labels):
        return None
    if histogram:
        if not (isinstance(value, list) and len(value) == HIST_LEN):
            return None
        if not all(_number(v) for v in value):
            return None
        return tuple(labels), [float(v) for v in value]
    if not _number(value):
        return None
    return tuple(labels), value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
