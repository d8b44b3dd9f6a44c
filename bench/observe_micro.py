"""Micro-benchmark of the hot-path calls of :class:`tgrunner.observability.Metrics`.

Each call is timed alone with ``timeit`` (best of ``--repeat`` runs of ``--number`` calls), next
to prometheus_client's own ``Counter.inc`` and ``Histogram.observe`` for scale. Also times a
``snapshot()`` and a scrape (``generate_latest``) of a Metrics that has seen typical traffic.

    .venv/bin/python bench/observe_micro.py
    .venv/bin/python bench/observe_micro.py --number 500000
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tgrunner.observability import Metrics
from tgrunner.observability._families import BUCKETS


def _best(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Microseconds per call, best of ``repeat``."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--number", type=int, default=200_000, help="calls per run (default 200000)")
    p.add_argument("--repeat", type=int, default=5, help="runs, the best counts (default 5)")
    args = p.parse_args()
    n, r = args.number, args.repeat

    metrics = Metrics()
    update = {"update_id": 1, "message": {"chat": {"id": 1}, "text": "hi"}}
    received = metrics.received
    handled = metrics.handled
    api_call = metrics.api_call
    webhook = metrics.webhook_response
    rows = {
        "received('polling', update)": lambda: received("polling", update),
        "handled('ok', 0.012, 0.0004)": lambda: handled("ok", 0.012, 0.0004),
        "handled('ok')": lambda: handled("ok"),
        "api_call('sendMessage', 'ok', 0.045)": lambda: api_call("sendMessage", "ok", 0.045),
        "api_call('sendmessage', 'ok', 0.045)": lambda: api_call("sendmessage", "ok", 0.045),
        "webhook_response(200)": lambda: webhook(200),
        "(an empty lambda, the timing overhead)": lambda: None,
    }
    registry = CollectorRegistry()
    counter = Counter("c_total", "c", ["outcome"], registry=registry).labels("ok")
    histogram = Histogram("h_seconds", "h", buckets=BUCKETS, registry=registry)
    rows["prometheus_client Counter child .inc()"] = counter.inc
    rows["prometheus_client Histogram.observe(0.012)"] = lambda: histogram.observe(0.012)

    for name, fn in rows.items():
        print(f"{name:<46} {_best(fn, n, r):6.3f} µs")
    print(f"{'snapshot()':<46} {_best(metrics.snapshot, 2000, r):6.1f} µs")
    scrape = lambda: generate_latest(metrics.registry)  # noqa: E731
    print(f"{'generate_latest(metrics.registry)':<46} {_best(scrape, 200, r):6.1f} µs")


if __name__ == "__main__":
    main()
