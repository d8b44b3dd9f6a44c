"""The runner's side of worker processes (``--workers N``): poison, failures, SIGHUP, summary.

A :class:`~tgrunner.executors.processes.ProcessExecutor` runs the handlers; the runner keeps
the source, the journal and the scheduler. :class:`WorkerControl` is what the runner adds
around such an executor:

- **Poison.** An update that was in flight at 3 deaths of its worker fails with
  :class:`~tgrunner.errors.PoisonUpdate`. The executor names it first (``on_poison``), so when
  the scheduler reports it done, the runner quarantines it in the journal
  (:meth:`~tgrunner.intake.journal.Journal.set_aside`) instead of marking it finished. With
  strict offsets there is no quarantine to keep it in: an error line says so, and it is
  confirmed, so it never crash-loops the workers.
- **A crash loop after start** (a restarted worker fails to start 3 times in a row) is given to
  the runner as a ConfigError, which stops it cleanly and raises it (the CLI exits 2 with the
  worker's error). One at start-up makes ``executor.start()`` raise it directly.
- **SIGHUP** is recorded by the signal handler (:class:`~tgrunner.lifecycle.StopControl`); the
  runner's :func:`serve_reloads` task then replaces the workers one at a time, each
  replacement ready before the old one stops. A replacement that cannot start is logged as an
  error and the running workers keep serving. With no worker processes SIGHUP is logged and
  ignored.
- **The summary**: one line per worker slot after the stop (:meth:`WorkerControl.summary`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from tgrunner.errors import ConfigError
from tgrunner.executors.processes import POISON_DEATHS, ProcessExecutor
from tgrunner.intake.journal import Journal
from tgrunner.intake.strict import StrictIntake
from tgrunner.runtime.report import workers_line

__all__ = ["WorkerControl", "serve_reloads"]

log = logging.getLogger(__name__)


class WorkerControl:
    """The hooks the runner binds to ``executor``; ``failed(exc)`` is called with a ConfigError
    when a worker slot hit its crash limit after start (the runner stops)."""

    def __init__(self, executor: ProcessExecutor, *, failed: Callable[[BaseException], None]):
        self.executor = executor
        self.poisoned: set[int] = set()  # named by on_poison, not yet reported done
        executor.bind(on_failure=failed, on_poison=self._poison)

    def _poison(self, update_id: int | None) -> None:
        if update_id is not None:
            self.poisoned.add(update_id)

    def take_poisoned(self, update_id: int) -> bool:
        """Whether ``update_id`` is a poison update (asked once, when it is reported done)."""
        if update_id in self.poisoned:
            self.poisoned.discard(update_id)
            return True
        return False

    @staticmethod
    def set_aside(intake: Journal | StrictIntake, update_id: int) -> bool:
        """Quarantine a poison update in the journal (True). With strict offsets there is no
        quarantine: log it and return False, for the runner to confirm it as finished
        (Telegram would send it again forever)."""
        reason = f"was being handled at {POISON_DEATHS} deaths of its worker process"
        if isinstance(intake, Journal):
            intake.set_aside(update_id, attempts=POISON_DEATHS, reason=reason)
            return True
        log.error(
            "update %d %s; it is confirmed and not handled again (with --no-journal there is "
            "no quarantine to keep it in)",
            update_id,
            reason,
        )
        return False

    def summary(self) -> str:
        """One line on the workers, for the stop summary."""
        return workers_line(self.executor.stats(), poisoned=self.executor.poisoned)


async def serve_reloads(control: WorkerControl | None, requested: asyncio.Event) -> None:
    """Forever: on each SIGHUP (``requested`` set), replace the worker processes one at a time;
    without workers, log that it is ignored. Cancel it to end it."""
    while True:
        await requested.wait()
        requested.clear()
        if control is None:
            log.warning("SIGHUP: no worker processes to replace (--workers 1); ignored")
            continue
        executor = control.executor
        started = time.monotonic()
        log.info("SIGHUP: replacing %d worker processes, one at a time", executor.options.workers)
        try:
            await executor.replace_workers()
        except ConfigError as exc:
            log.error("SIGHUP: a new worker process cannot start, so the old one keeps serving: %s",
                      exc)  # fmt: skip
            continue
        except RuntimeError:  # closed by a stop meanwhile
            return
        log.info("SIGHUP: %d worker processes replaced in %.2f s (pids %s)",
                 executor.options.workers, time.monotonic() - started,
                 ", ".join(str(s.pid) for s in executor.stats()))  # fmt: skip
