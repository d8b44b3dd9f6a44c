"""The metric families tgrunner exports, and how values become prometheus_client families.

Values are kept as plain numbers (see :mod:`tgrunner.observability.metrics` for why), in one
shape shared by a live :class:`~tgrunner.observability.metrics.Metrics`, its snapshots and the
supervisor's
:class:`~tgrunner.observability.aggregate.Aggregator`:

- ``Values``: family name -> label values (a tuple, in the family's label order) -> value;
- a counter's value is a number;
- a histogram's value is a list: one count per bucket, not cumulative (``BUCKETS`` plus
  ``+Inf``), then the sum of the observations; merging two histograms adds them item by item.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tgrunner.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = [
    "BUCKETS",
    "BY_NAME",
    "FAMILIES",
    "GAUGES",
    "HIST_LEN",
    "Family",
    "Labels",
    "Value",
    "Values",
    "add_into",
    "build_families",
    "require_prometheus",
]

log = logging.getLogger(__name__)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Histogram bucket bounds in seconds: 1 ms (an echo handler) to 60 s (a slow upload)."""

HIST_LEN = len(BUCKETS) + 2  # the buckets, +Inf, then the sum

Labels = tuple[str, ...]
Value = float | list[float]
Values = dict[str, dict[Labels, Value]]


@dataclass(frozen=True, slots=True)
class Family:
    """One exported metric: its full name, type, help text and label names."""

    name: str
    kind: Literal["counter", "histogram", "gauge"]
    doc: str
    labels: Labels = ()


FAMILIES = (
    Family(
        "tgrunner_updates_received_total",
        "counter",
        "Updates received, by source and update kind (unknown: not a Bot API update field).",
        ("source", "kind"),
    ),
    Family(
        "tgrunner_updates_handled_total",
        "counter",
        "Updates finished, by outcome (ok, error, timeout, poison, shed).",
        ("outcome",),
    ),
    Family(
        "tgrunner_handle_duration_seconds",
        "histogram",
        "Time from a handler's start to its end.",
    ),
    Family(
        "tgrunner_lane_wait_seconds",
        "histogram",
        "Time an update waited for its keys' lanes and the concurrency limit.",
    ),
    Family(
        "tgrunner_webhook_requests_total",
        "counter",
        "Webhook requests answered, by HTTP status code.",
        ("code",),
    ),
    Family(
        "tgrunner_api_calls_total",
        "counter",
        "Bot API calls, by method (other: not a Bot API method) and status.",
        ("method", "status"),
    ),
    Family(
        "tgrunner_api_call_duration_seconds",
        "histogram",
        "Bot API call time, by method: the answering HTTP exchange's (no flood-control wait, "
        "no earlier try); calls that got no answer are only counted.",
        ("method",),
    ),
    Family(
        "tgrunner_worker_restarts_total",
        "counter",
        "Worker processes restarted, by worker slot.",
        ("slot",),
    ),
    Family("tgrunner_updates_in_flight", "gauge", "Updates being handled now."),
    Family("tgrunner_lanes", "gauge", "Keys with a lane (updates queued or running)."),
    Family("tgrunner_backlog", "gauge", "Updates queued, not started (in lanes, or parked)."),
    Family("tgrunner_journal_pending", "gauge", "Updates in the journal, not finished."),
    Family("tgrunner_journal_quarantined", "gauge", "Updates set aside after 3 crashes."),
    Family(
        "tgrunner_build_info",
        "gauge",
        "Always 1; the labels say which tgrunner, Python and front-end run.",
        ("version", "python", "frontend"),
    ),
)
"""Every family, in exposition order."""

BY_NAME = {family.name: family for family in FAMILIES}

GAUGES = {
    "in_flight": "tgrunner_updates_in_flight",
    "lanes": "tgrunner_lanes",
    "backlog": "tgrunner_backlog",
    "journal_pending": "tgrunner_journal_pending",
    "journal_quarantined": "tgrunner_journal_quarantined",
}
"""``bind_gauges`` keyword -> gauge family."""


def require_prometheus() -> None:
    """Import prometheus_client, or raise ConfigError saying how to install it."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"metrics need the prometheus_client package ({exc}): pip install 'tgrunner[metrics]'"
        ) from exc


def new_histogram() -> list[float]:
    """An empty histogram value: every bucket 0, sum 0."""
    return [0.0] * HIST_LEN


def add_into(into: Values, values: Mapping[str, Mapping[Labels, Value]]) -> None:
    """Add ``values`` into ``into``, counter by counter and bucket by bucket (copies lists)."""
    for name, series in values.items():
        target = into.setdefault(name, {})
        for labels, value in series.items():
            have = target.get(labels)
            if isinstance(value, list):
                if have is None:
                    target[labels] = list(value)
                else:
                    assert isinstance(have, list)
                    for i, item in enumerate(value):
                        have[i] += item
            else:
                target[labels] = value if have is None else have + value  # type: ignore[operator]


def _le(bound: float) -> str:
    from prometheus_client.utils import floatToGoString

    return floatToGoString(bound)


_LE = None  # the ``le`` label values, formatted once on first use


def build_families(values: Values) -> Iterator[Metric]:
    """prometheus_client families for ``values``, in :data:`FAMILIES` order.

    A family without labels is always exported (0 when nothing was counted); a labelled one
    only with the label sets that have values.
    """
    from prometheus_client.metrics_core import Metric

    global _LE
    if _LE is None:
        _LE = [*(_le(b) for b in BUCKETS), "+Inf"]
    les = _LE
    for family in FAMILIES:
        series = values.get(family.name, {})
        if not series and not family.labels and family.kind != "gauge":
            series = {(): new_histogram() if family.kind == "histogram" else 0.0}
        if not series and family.kind == "gauge":
            continue
        name = family.name
        if family.kind == "counter":
            metric = Metric(name.removesuffix("_total"), family.doc, "counter")
        else:
            metric = Metric(name, family.doc, family.kind)
        for labels in sorted(series):
            value = series[labels]
            named = dict(zip(family.labels, labels, strict=True))
            if isinstance(value, list):
                total = 0.0
                for le, count in zip(les, value, strict=False):
                    total += count
                    metric.add_sample(f"{name}_bucket", {**named, "le": le}, total)
                metric.add_sample(f"{name}_count", named, total)
                metric.add_sample(f"{name}_sum", named, value[-1])
            else:
                metric.add_sample(name, named, float(value))
        yield metric
