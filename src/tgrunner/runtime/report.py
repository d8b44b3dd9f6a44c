"""What the runner tells a person: one line when it starts, one summary when it stops.

Both are logged at INFO on the ``tgrunner`` logger, in the spirit of uvicorn's "Uvicorn running
on …"::

    @echo_bot (id 123) · native · polling https://api.telegram.org · journal
    .tgrunner/123/journal.sqlite3 · concurrency 500 · transport fast

    stopped (clean) after 12.3 s: 1200 handled (3 failed, 0 timed out), 5 replayed; 97.6
    updates/s

With worker processes, a second summary line gives each worker slot's figures::

    workers: #0 pid 4242 612 done, 1 restart; #1 pid 4250 588 done, 1 replaced; 1 poison
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tgrunner.executors.processes import WorkerStats

__all__ = ["RunnerStats", "start_line", "stop_summary", "summary_of", "workers_line"]


@dataclass(slots=True)
class RunnerStats:
    """Counters since start.

    ``received``, ``finished`` (failed and timed out ones included), ``errors``, ``timeouts``,
    ``stuck``; ``replayed``: unfinished updates taken from the journal at start;
    ``quarantined``: updates set aside after killing the process (or their worker process) 3
    times. Updates parked or shed because their chat was at its per-key limit are counted by
    ``Runner.admission`` (``parked``, ``shed``). ``stop``: how the last stop went, ``""`` until
    one ended: ``"clean"``, ``"fast"`` (what ran was cancelled), ``"budget exceeded"`` (the
    stop budget ran out, or handlers ignored cancellation), ``"failed"`` (a failure of the
    runtime itself) or ``"cancelled"`` (``serve()`` was cancelled).
    """

    received: int = 0
    finished: int = 0
    errors: int = 0
    timeouts: int = 0
    stuck: int = 0
    replayed: int = 0
    quarantined: int = 0
    stop: str = ""


def start_line(
    me: Mapping[str, Any],
    *,
    frontend: str,
    source: str,
    intake: str,
    concurrency: int,
    transport: str,
    proxy: str | None = None,
    workers: int = 1,
) -> str:
    """``@username (id N) · front-end · source · intake · concurrency N · transport NAME``,
    with `` via proxy http://host:port`` (never its password) when there is one, and
    `` · N worker processes`` when there are (``workers`` above 1)."""
    name = f"@{me['username']}" if me.get("username") else str(me.get("first_name") or "bot")
    if proxy:
        parts = urlsplit(proxy)
        transport += f" via proxy {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    shown = [
        f"{name} (id {me.get('id')})",
        frontend,
        source,
        intake,
        f"concurrency {concurrency}",
        f"transport {transport}",
    ]
    if workers > 1:
        shown.append(f"{workers} worker processes")
    return " · ".join(shown)


def stop_summary(
    *,
    how: str,
    seconds: float,
    handled: int,
    failed: int,
    timed_out: int,
    replayed: int,
    stuck: int = 0,
    quarantined: int = 0,
) -> str:
    """``stopped (HOW) after S s: N handled (F failed, T timed out), R replayed; X updates/s``,
    with the stuck and quarantined counts when there are any."""
    rate = handled / seconds if seconds > 0 else 0.0
    extra = "".join(
        f", {n} {what}" for n, what in ((stuck, "stuck"), (quarantined, "quarantined")) if n
    )
    took = f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2f}"
    return (
        f"stopped ({how}) after {took} s: {handled} handled ({failed} failed, "
        f"{timed_out} timed out), {replayed} replayed{extra}; {rate:.1f} updates/s"
    )


def summary_of(stats: RunnerStats, seconds: float) -> str:
    """:func:`stop_summary` of a runner's counters, ``stats.stop`` saying how it stopped."""
    return stop_summary(
        how=stats.stop,
        seconds=seconds,
        handled=stats.finished,
        failed=stats.errors,
        timed_out=stats.timeouts,
        replayed=stats.replayed,
        stuck=stats.stuck,
        quarantined=stats.quarantined,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def workers_line(stats: Iterable[WorkerStats], *, poisoned: int = 0) -> str:
    """``workers: #0 pid 4242 612 done, 1 restart; #1 pid 4250 588 done; 1 poison``: per
    worker slot its last process, the updates it finished, its restarts (after a death or a
    hang) and replacements (SIGHUP); then the updates set aside as poison, if any."""
    parts = []
    for s in stats:
        text = f"#{s.slot} pid {s.pid or '-'} {s.done} done"
        if s.restarts:
            text += f", {_plural(s.restarts, 'restart')}"
        if s.replaced:
            text += f", {s.replaced} replaced"
        parts.append(text)
    line = "workers: " + "; ".join(parts)
    return line + (f"; {poisoned} poison" if poisoned else "")
