"""The runner's metrics (``tgrunner run --metrics HOST:PORT``): hooks on its parts, a server.

::

    observation = await start_observation(runner)   # in the runner's open; None: metrics off
    observation.received(batch)                      # each journaled batch, in the fetch loop
    await close_observation(observation)             # in the runner's close

:func:`attach_metrics` sets the optional hooks of the runner's parts to record into one
:class:`~tgrunner.observability.Metrics`; each part costs nothing more than an ``is None``
test while its hook is unset, so a runner without ``--metrics`` pays nothing else:

- the scheduler's ``observe()``: the run time and lane wait of each update handled ok are
  appended to the Metrics' lists inline (``scheduler_run_times``), the other outcomes (error,
  timeout, poison) reach ``scheduler_observer``; from the start of a stop, every outcome does
  (see the runner); the admission's ``on_shed``: ``handled("shed")``;
- the Bot's ``observe()``: the seconds of each call that succeeded are appended to the
  Metrics' lists inline (``api_call_times``), the others reach ``api_result``; the calls an
  aiogram or PTB bot sends through its own session come through :mod:`tgrunner.client.calls`;
- the webhook source's ``on_response``: ``webhook_response``;
- with worker processes: each worker keeps its own Metrics (its Bot's API calls) and sends
  snapshots; an :class:`~tgrunner.observability.Aggregator` sums them, and a worker's death
  counts a ``worker_restart`` of its slot;
- gauges read at each scrape: in flight, lanes, backlog (queued in lanes plus parked), and
  the journal's pending and quarantined updates.

``/readyz`` checks ``source`` (the runner has started and is not stopping), ``journal`` (open;
with the journal), ``workers`` (every slot has a ready process; with worker processes),
``jobs`` (the job queue answers), ``job_workers`` (every job worker slot has a process;
with ``--job-workers``) and ``state`` (the state store answers; for a runner built by
``tgrunner run``).

This module imports :mod:`tgrunner.observability` (and prometheus_client) only when metrics
are on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tgrunner.client import calls
from tgrunner.executors.processes import ProcessExecutor, WorkerEvent
from tgrunner.intake.journal import Journal
from tgrunner.runtime.jobs import readiness as jobs_readiness
from tgrunner.runtime.state import readiness as state_readiness

if TYPE_CHECKING:
    from tgrunner.observability import Metrics, ObserveServer

__all__ = ["Observation", "attach_metrics", "close_observation", "start_observation"]

say = logging.getLogger("tgrunner")

JSON = dict[str, Any]
Runner = Any
"""A :class:`~tgrunner.runtime.runner.Runner` (which imports this module: not imported here,
to keep the layers acyclic)."""


class Observation:
    """The metrics of one runner, and the server that exposes them (see the module doc)."""

    def __init__(self, runner: Runner, metrics: Metrics) -> None:
        self.runner = runner
        self.metrics = metrics
        self.server: ObserveServer | None = None
        self._source = getattr(runner.source, "name", "polling")
        self._opening: asyncio.Task[Any] | None = None  # the runner's open, once started

    def received(self, batch: list[JSON]) -> None:
        """Count each update of a batch the fetch loop took (after journaling)."""
        self.metrics.received_batch(self._source, batch)

    def _worker_event(self, event: WorkerEvent, aggregator: Any) -> None:
        if event.kind in ("died", "stopped"):
            aggregator.process_gone(event.slot, event.pid)
        executor = self.runner.executor
        if event.kind == "died" and isinstance(executor, ProcessExecutor) and not executor.closing:
            self.metrics.worker_restart(event.slot)

    async def ready(self) -> dict[str, bool]:
        """The checks of ``/readyz``."""
        runner = self.runner
        opening = self._opening
        opened = (
            opening is not None
            and opening.done()
            and not opening.cancelled()
            and opening.exception() is None
        )
        checks = {"source": opened and not runner._control.requested.is_set()}
        if isinstance(runner.intake, Journal):
            checks["journal"] = runner.intake.is_open
        if isinstance(runner.executor, ProcessExecutor):
            checks["workers"] = runner.executor.ready
        checks.update(await jobs_readiness(runner))
        checks.update(await state_readiness(runner))
        return checks

    async def start(self) -> None:
        """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``settings.metrics``; called
        inside the runner's open (whose end makes ``source`` ready). ConfigError when the
        address cannot be used."""
        from tgrunner.observability import ObserveServer

        listen = self.runner.settings.metrics or "127.0.0.1:9090"
        self._opening = asyncio.current_task()
        self.server = ObserveServer(self.metrics, listen=listen, ready=self.ready)
        await self.server.start()
        say.info("metrics on %s/metrics", self.server.url)

    async def close(self) -> None:
        """Stop the server and unhook the runner's Bot; safe to call twice."""
        if self.server is not None:
            await self.server.close()
        self.runner.bot.observe(None)
        calls.on_call = None


def attach_metrics(runner: Runner, metrics: Metrics) -> Observation:
    """Set the hooks of ``runner``'s scheduler, admission, Bot, source and executor to record
    into ``metrics``, and bind its gauges; before the runner's executor starts."""
    from tgrunner.observability import Aggregator

    observation = Observation(runner, metrics)
    scheduler, admission = runner.scheduler, runner.admission
    scheduler.observe(metrics.scheduler_observer(runner._skipped), metrics.scheduler_run_times())
    handled = metrics.handled
    admission.on_shed = lambda update: handled("shed")
    runner.bot.observe(metrics.api_result, metrics.api_call_times())
    calls.on_call = metrics.api_call  # what an aiogram or PTB bot sends through its session
    if hasattr(runner.source, "on_response"):
        runner.source.on_response = metrics.webhook_response
    executor = runner.executor
    if isinstance(executor, ProcessExecutor):
        aggregator = Aggregator(metrics)
        executor.bind(
            on_event=lambda event: observation._worker_event(event, aggregator),
            on_metrics=aggregator.update,
        )
    intake = runner.intake
    journal = intake if isinstance(intake, Journal) else None
    metrics.bind_gauges(
        in_flight=lambda: scheduler.running,
        lanes=lambda: scheduler.lanes,
        backlog=lambda: scheduler.pending + admission.overflow.count,
        journal_pending=None if journal is None else lambda: _open_only(journal, "pending"),
        journal_quarantined=(
            None if journal is None else lambda: _open_only(journal, "quarantined_count")
        ),
    )
    return observation


def _open_only(journal: Journal, what: str) -> int:
    """A count of the journal's, 0 once it is closed (a scrape during the stop)."""
    return int(getattr(journal, what)) if journal.is_open else 0


async def start_observation(runner: Runner) -> Observation | None:
    """Metrics for ``runner`` when its settings name a metrics address (else None): hooks
    attached and the server started. ConfigError without prometheus_client."""
    if runner.settings.metrics is None:
        return None
    from tgrunner.observability import Metrics

    observation = attach_metrics(runner, Metrics(frontend=runner.frontend))
    await observation.start()
    return observation


async def close_observation(observation: Observation | None) -> None:
    """Close ``observation`` (nothing for None)."""
    if observation is not None:
        await observation.close()
