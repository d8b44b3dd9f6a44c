"""The runtime's Prometheus metrics: counters and histograms updated on the hot path.

::

    metrics = Metrics(frontend="native")
    metrics.bind_gauges(in_flight=lambda: runner.in_flight, backlog=scheduler.backlog)
    metrics.received("polling", update)
    metrics.handled("ok", duration=0.012, lane_wait=0.0004)
    metrics.api_call("sendMessage", api_status(None), 0.045)
    text = prometheus_client.generate_latest(metrics.registry)

Why plain numbers and not prometheus_client's ``Counter`` and ``Histogram``: a handled update
observes two histograms and a counter, which costs about 1.5 µs with prometheus_client (a lock
per value, and a linear scan of the buckets). The values live in this object and reach
prometheus_client only when the registry is collected (a scrape), as the families of one
custom collector. The same values make the compact :meth:`Metrics.snapshot` a worker process
sends to its supervisor.

The per-update paths do less still: a successful update or call only has its duration appended
to a list, inline, by the scheduler (:meth:`Metrics.scheduler_run_times`) or the Bot
(:meth:`Metrics.api_call_times`), with no call, and the list is
folded into its histogram and counter once it holds ``fold_every`` durations or when the
values are read, whichever comes first: sorted in C, then one ``bisect`` per bucket bound.
Counting each value into its bucket as it comes costs about three times as much, a fair share
of what an echoed update costs in all.

Thread model: the recording methods take no lock. Call them from one thread, the event loop's
(collection on that loop too, as :class:`~tgrunner.observability.server.ObserveServer` does).

Label values are bounded so the number of time series stays small: update kinds are the Bot
API's ``Update`` fields (else ``unknown``), methods are the Bot API's (else ``other``), statuses
and HTTP codes are checked, and no chat or user id is ever a label.
"""

from __future__ import annotations

import logging
import platform
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from tgrunner.client.timing import CallTimes
from tgrunner.errors import BadAnswer, NetworkError, PoisonUpdate, TelegramError
from tgrunner.observability._families import (
    BUCKETS,
    GAUGES,
    Labels,
    Value,
    Values,
    build_families,
    new_histogram,
    require_prometheus,
)
from tgrunner.observability._names import BOT_API_METHODS
from tgrunner.scheduler.timing import RunTimes
from tgrunner.sources.polling import UPDATE_KINDS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["OUTCOMES", "SOURCES", "Metrics", "api_status"]

log = logging.getLogger(__name__)

SOURCES = ("polling", "webhook", "stream")
"""The values of the ``source`` label."""

OUTCOMES = ("ok", "error", "timeout", "poison", "shed")
"""The values of the ``outcome`` label: finished, raised, timed out, quarantined, dropped."""

SNAPSHOT_VERSION = 1

_KINDS = frozenset(UPDATE_KINDS)
_METHODS = {name: name for name in BOT_API_METHODS}
# Telegram accepts method names in any case; the label keeps the documented spelling.
_METHODS_LOWER = {name.lower(): name for name in BOT_API_METHODS}
_STATUS = re.compile(r"ok|network|bad_answer|error|error_[1-5][0-9][0-9]")


def api_status(error: BaseException | None) -> str:
    """The ``status`` label of a Bot API call that ended with ``error`` (None: it succeeded).

    ``"ok"``; ``"error_<code>"`` for a Telegram error (``error_429``, ``error_400``, ...);
    ``"network"`` when no answer came (timeouts included); ``"bad_answer"`` for an answer that
    is not the Bot API's; ``"error"`` for anything else.
    """
    if error is None:
        return "ok"
    if isinstance(error, TelegramError):
        code = error.error_code
        return f"error_{code}" if 100 <= code <= 599 else "error"
    if isinstance(error, NetworkError):
        return "network"
    if isinstance(error, BadAnswer):
        return "bad_answer"
    return "error"


class Metrics:
    """The metrics of one process, with its own ``CollectorRegistry`` (never the global one).

    - ``frontend``: the ``frontend`` label of ``tgrunner_build_info``, default ``"native"``.
    - ``build_info``: export ``tgrunner_build_info``, default True (worker processes leave it to
      the supervisor; it is never part of a snapshot anyway).
    - ``fold_every``: how many durations of successful updates or calls wait in a list before
      they are counted into their histogram, default 256 (see the module doc; reading the
      values folds them all first). Up to 256, the length checked after each append is one
      of Python's cached ints: a longer list would make a new int at every check.

    Raises ConfigError, saying ``pip install 'tgrunner[metrics]'``, without prometheus_client.
    The recording methods raise ValueError for a label value outside their documented set.
    """

    def __init__(
        self, *, frontend: str = "native", build_info: bool = True, fold_every: int = 256
    ) -> None:
        require_prometheus()
        if fold_every < 1:
            raise ValueError(f"fold_every must be 1 or more, not {fold_every!r}")
        from prometheus_client import CollectorRegistry

        from tgrunner._version import __version__

        self._received: dict[str, dict[str, int]] = {source: {} for source in SOURCES}
        self._handled: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self._handle_hist = new_histogram()
        self._wait_hist = new_histogram()
        self._fold_every = fold_every
        # Not yet folded (see the module doc): the run times of updates handled ok, and the
        # lane waits among them that were not zero (the others are the difference in number).
        self._ok_runs: list[float] = []
        self._ok_waits: list[float] = []
        self._webhook: dict[int, int] = {}
        self._api_calls: dict[tuple[str, str], int] = {}
        # Successful calls per method label, kept apart from _api_calls so that the hot path
        # (api_result) looks up a str, not a tuple it would build each time; their durations
        # not yet folded into _api_hists (nor counted in _api_ok), by method label.
        self._api_ok: dict[str, int] = {}
        self._api_hists: dict[str, list[float]] = {}
        self._api_pending: dict[str, list[float]] = {}
        self._restarts: dict[int, int] = {}
        self._gauges: dict[str, Callable[[], float]] = {}
        self._gauge_failed: set[str] = set()
        self._build: Labels | None = (
            (__version__, platform.python_version(), frontend) if build_info else None
        )
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    @property
    def registry(self) -> CollectorRegistry:
        """The registry to expose (``generate_latest(metrics.registry)``); this object is its
        collector, or the :class:`~tgrunner.observability.aggregate.Aggregator` built on it."""
        return self._registry

    # -- recording (hot path) ------------------------------------------------------------

    def received(self, source: str, update: Mapping[str, Any]) -> None:
        """Count one update from ``source`` (``"polling"``, ``"webhook"`` or ``"stream"``); it
        has its ``update_id``, as every source checks.

        Its kind is its first field other than ``update_id`` when that is a Bot API update
        kind, else ``"unknown"``.
        """
        self.received_batch(source, (update,))

    def received_batch(self, source: str, batch: Sequence[Mapping[str, Any]]) -> None:
        """:meth:`received` for each update of ``batch`` (a list or tuple; every update has
        its ``update_id``), in one call (the runner's)."""
        try:
            counts = self._received[source]
        except KeyError:
            raise ValueError(f"source {source!r} is not one of {', '.join(SOURCES)}") from None
        if not batch:
            return
        # A batch mostly holds one kind, and an update from Telegram only its update_id and
        # its kind: checking that every update is such a pair costs half of finding each
        # one's first field.
        kind = _first_field(batch[0])
        if kind in _KINDS:
            for update in batch:
                if kind not in update or len(update) != 2:
                    break
            else:
                counts[kind] = counts.get(kind, 0) + len(batch)
                return
        # Counted by runs of one field: half the cost of a dict update per update.
        last: str | None = None
        run = 0
        for update in batch:
            field = None
            for field in update:
                if field != "update_id":
                    break
            if field == last:
                run += 1
                continue
            if run:
                kind = last if last in _KINDS else "unknown"
                counts[kind] = counts.get(kind, 0) + run
            last, run = field, 1
        if run:
            kind = last if last in _KINDS else "unknown"
            counts[kind] = counts.get(kind, 0) + run

    def scheduler_observer(
        self, skipped: Collection[int]
    ) -> Callable[[Mapping[str, Any], BaseException | None, bool, float, float], None]:
        """The scheduler's ``observer``: :meth:`handled` for each finished update (ok, error,
        timeout or poison, with its run time and lane wait), except an update whose
        ``update_id`` is in ``skipped`` (read at each call: the runner's set of updates not
        started at a stop).

        One closure over the counters rather than a method calling :meth:`handled`: it runs
        once per update, and a Python frame is a fair share of what a handled update costs. An
        update handled ok only has its times appended to lists (see the module doc).
        """
        counts, run_hist, wait_hist = self._handled, self._handle_hist, self._wait_hist
        runs, waits = self._ok_runs, self._ok_waits
        add_run, add_wait = runs.append, waits.append
        fold_every, fold = self._fold_every, self._fold_handled
        buckets = BUCKETS

        def observe(
            item: Mapping[str, Any],
            exc: BaseException | None,
            timed_out: bool,
            run: float,
            waited: float,
        ) -> None:
            if exc is None and not timed_out and not skipped:  # the usual case
                add_run(run)
                if waited:
                    add_wait(waited)
                if len(runs) >= fold_every:
                    fold()
                return
            if skipped and item["update_id"] in skipped:
                return  # not started: queued when a stop came, left for the next start
            if timed_out:
                counts["timeout"] += 1
            elif exc is None:
                counts["ok"] += 1
            else:
                counts["poison" if isinstance(exc, PoisonUpdate) else "error"] += 1
            run_hist[bisect_left(buckets, run)] += 1
            run_hist[-1] += run
            wait_hist[bisect_left(buckets, waited)] += 1
            wait_hist[-1] += waited

        return observe

    def scheduler_run_times(self) -> RunTimes:
        """The scheduler's ``run_times`` (``scheduler.observe(observer, run_times)``): the
        updates handled ok, counted in when their times are folded (see the module doc). The
        scheduler appends to them inline, with no call; with them, :meth:`scheduler_observer`
        is told only of the other outcomes."""
        return RunTimes(
            self._ok_runs, self._ok_waits, fold=self._fold_handled, every=self._fold_every
        )

    def handled(
        self, outcome: str, duration: float | None = None, lane_wait: float | None = None
    ) -> None:
        """Count one finished update: ``outcome`` is one of :data:`OUTCOMES`.

        ``duration``: seconds from the handler's start to its end; ``lane_wait``: seconds it
        waited to start. Each is observed in its histogram unless None (the default: e.g. a
        shed or poison update never started).
        """
        try:
            self._handled[outcome] += 1
        except KeyError:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}") from None
        if duration is not None:
            hist = self._handle_hist
            hist[bisect_left(BUCKETS, duration)] += 1
            hist[-1] += duration
        if lane_wait is not None:
            hist = self._wait_hist
            hist[bisect_left(BUCKETS, lane_wait)] += 1
            hist[-1] += lane_wait

    def api_call(self, method: str, status: str, duration: float | None = None) -> None:
        """Count one Bot API call of ``method`` that ended with ``status`` (see
        :func:`api_status`), and observe its ``duration`` in seconds unless None (default).

        A method that is not the Bot API's (in any letter case) is labelled ``"other"``.
        """
        label = _METHODS.get(method)
        if label is None:
            label = _METHODS_LOWER.get(method.lower(), "other")
        if status == "ok":
            ok = self._api_ok
            ok[label] = ok.get(label, 0) + 1
        else:
            key = (label, status)
            count = self._api_calls.get(key)
            if count is None:
                if not _STATUS.fullmatch(status):
                    raise ValueError(
                        f"status {status!r} is not ok, network, bad_answer, error or error_<code>"
                    )
                count = 0
            self._api_calls[key] = count + 1
        if duration is not None:
            hist = self._api_hists.get(label)
            if hist is None:
                hist = self._api_hists[label] = new_histogram()
                self._api_ok.setdefault(label, 0)  # api_result's fast path counts into it
                self._api_pending[label] = []  # where api_result's fast path appends
            hist[bisect_left(BUCKETS, duration)] += 1
            hist[-1] += duration

    def api_result(self, method: str, error: BaseException | None, duration: float | None) -> None:
        """:meth:`api_call` for a call that ended with ``error`` (None: it succeeded), as
        :class:`~tgrunner.client.bot.Bot`'s ``on_call`` hook reports it (``duration`` None:
        no answer came, so none is observed); one frame less than converting the status in a
        hook of one's own."""
        if error is None and duration is not None:
            # The usual case: a method seen before that succeeded (its histogram exists).
            pending = self._api_pending.get(method)
            if pending is not None:
                pending.append(duration)
                if len(pending) >= self._fold_every:
                    self._fold_api(method, pending)
                return
        self.api_call(method, api_status(error), duration)

    def api_call_times(self) -> CallTimes:
        """The Bot's ``times`` (``bot.observe(metrics.api_result, metrics.api_call_times())``):
        the calls that succeeded, by method label, counted in when their seconds are folded
        (see the module doc). A method's list is made by its first call through
        :meth:`api_result`; the Bot appends to it inline from then on."""
        return CallTimes(self._api_pending, fold=self._fold_api, every=self._fold_every)

    def webhook_response(self, code: int) -> None:
        """Count one webhook request answered with HTTP status ``code`` (100-599)."""
        counts = self._webhook
        if code in counts:
            counts[code] += 1
        elif isinstance(code, int) and 100 <= code <= 599:
            counts[code] = 1
        else:
            raise ValueError(f"HTTP status {code!r} is not an int from 100 to 599")

    def worker_restart(self, slot: int) -> None:
        """Count one restart of the worker process in ``slot`` (0 to 1023)."""
        counts = self._restarts
        if slot in counts:
            counts[slot] += 1
        elif isinstance(slot, int) and 0 <= slot < 1024:
            counts[slot] = 1
        else:
            raise ValueError(f"worker slot {slot!r} is not an int from 0 to 1023")

    def bind_gauges(
        self,
        *,
        in_flight: Callable[[], float] | None = None,
        lanes: Callable[[], float] | None = None,
        backlog: Callable[[], float] | None = None,
        journal_pending: Callable[[], float] | None = None,
        journal_quarantined: Callable[[], float] | None = None,
    ) -> None:
        """Bind the gauges to functions called at each collection (a scrape), not per update.

        ``in_flight`` (updates being handled), ``lanes`` (keys with a lane), ``backlog`` (queued
        in lanes, not started), ``journal_pending`` (unfinished in the journal) and
        ``journal_quarantined``. Each None (the default) keeps the gauge's current binding; a
        gauge never bound is not exported. A function that raises is logged once and its
        gauge left out of that scrape.
        """
        given = {
            "in_flight": in_flight,
            "lanes": lanes,
            "backlog": backlog,
            "journal_pending": journal_pending,
            "journal_quarantined": journal_quarantined,
        }
        for name, function in given.items():
            if function is not None:
                self._gauges[GAUGES[name]] = function

    # -- folding (see the module doc) ----------------------------------------------------

    def _fold_handled(self) -> None:
        runs, waits = self._ok_runs, self._ok_waits
        if not runs:
            return
        self._handled["ok"] += len(runs)
        self._wait_hist[0] += len(runs) - len(waits)  # the zero waits
        _fold(runs, self._handle_hist)
        _fold(waits, self._wait_hist)

    def _fold_api(self, label: str, pending: list[float]) -> None:
        self._api_ok[label] += len(pending)
        _fold(pending, self._api_hists[label])

    def _fold_all(self) -> None:
        self._fold_handled()
        for label, pending in list(self._api_pending.items()):
            if pending:
                self._fold_api(label, pending)

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The counters and histograms so far, as compact JSON for the supervisor's
        :meth:`Aggregator.update <tgrunner.observability.aggregate.Aggregator.update>`.

        Values are totals since this object was made (not deltas), so a lost snapshot loses
        nothing but time. Gauges and build info are left out: the supervisor owns them.
        """
        monotonic = {
            name: [[list(labels), value] for labels, value in series.items()]
            for name, series in self.monotonic_values().items()
        }
        return orjson.dumps({"v": SNAPSHOT_VERSION, "values": monotonic})

    def monotonic_values(self) -> Values:
        """The counters and histograms as :data:`~tgrunner.observability._families.Values`
        (copies)."""
        self._fold_all()
        values: Values = {
            "tgrunner_updates_received_total": {
                (source, kind): n
                for source, counts in self._received.items()
                for kind, n in list(counts.items())
            },
            "tgrunner_updates_handled_total": {(o,): n for o, n in self._handled.items()},
            "tgrunner_handle_duration_seconds": {(): list(self._handle_hist)},
            "tgrunner_lane_wait_seconds": {(): list(self._wait_hist)},
            "tgrunner_webhook_requests_total": {
                (str(code),): n for code, n in list(self._webhook.items())
            },
            "tgrunner_api_calls_total": self._api_call_counts(),
            "tgrunner_api_call_duration_seconds": {
                (method,): list(hist) for method, hist in list(self._api_hists.items())
            },
            "tgrunner_worker_restarts_total": {
                (str(slot),): n for slot, n in list(self._restarts.items())
            },
        }
        return values

    def _api_call_counts(self) -> dict[Labels, Value]:
        counts: dict[Labels, Value] = dict(list(self._api_calls.items()))
        for label, n in list(self._api_ok.items()):
            if n:
                counts[(label, "ok")] = n
        return counts

    def gauge_values(self) -> Values:
        """The bound gauges, read now, and build info."""
        values: Values = {}
        for name, function in list(self._gauges.items()):
            try:
                value: Value = float(function())
            except Exception:
                if name not in self._gauge_failed:
                    self._gauge_failed.add(name)
                    log.warning("the function of gauge %s raised; it is left out", name,
                                exc_info=True)  # fmt: skip
                continue
            values[name] = {(): value}
        if self._build is not None:
            values["tgrunner_build_info"] = {self._build: 1.0}
        return values

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's Collector protocol: this process's families."""
        values = self.monotonic_values()
        values.update(self.gauge_values())
        return build_families(values)

    def describe(self) -> list[Metric]:
        """No families up front, so registering never collects (prometheus_client protocol)."""
        return []


def _first_field(update: Mapping[str, Any]) -> str | None:
    """The first field of ``update`` other than ``update_id`` (None: it has none)."""
    for field in update:
        if field != "update_id":
            return field
    return None


def _fold(values: list[float], hist: list[float]) -> None:
    """Count ``values`` (emptied) into ``hist``: its buckets, ``+Inf`` and its sum."""
    if not values:
        return
    values.sort()
    total, below = len(values), 0
    for i, bound in enumerate(BUCKETS):
        upto = bisect_right(values, bound)  # a value equal to a bound is in its bucket (le)
        hist[i] += upto - below
        below = upto
        if upto == total:
            break
    else:
        hist[len(BUCKETS)] += total - below
    hist[-1] += sum(values)
    values.clear()
