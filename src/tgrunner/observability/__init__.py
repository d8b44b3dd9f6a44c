"""Observability: Prometheus metrics, ``/metrics``, ``/healthz`` and ``/readyz``.

- :class:`Metrics`: one process's counters, histograms and gauges (its own registry).
- :class:`Aggregator`: the supervisor's sum of its worker processes' :meth:`Metrics.snapshot`.
- :class:`ObserveServer`: the HTTP endpoints, answered even while the bot's loop is blocked.

prometheus_client is optional (``pip install 'tgrunner[metrics]'``) and imported only when a
:class:`Metrics` is made; ``import tgrunner`` never imports this package.
"""

from tgrunner.observability.aggregate import Aggregator
from tgrunner.observability.metrics import OUTCOMES, SOURCES, Metrics, api_status
from tgrunner.observability.server import ObserveServer, ReadyChecks, parse_listen

__all__ = [
    "OUTCOMES",
    "SOURCES",
    "Aggregator",
    "Metrics",
    "ObserveServer",
    "ReadyChecks",
    "api_status",
    "parse_listen",
]
