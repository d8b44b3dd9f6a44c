"""Run one echo bot, as its own process, against FakeTelegram in this process, and measure it.

The bot is pinned to core 1 and this process (FakeTelegram and the load driver) to core 0 when
the machine has two cores or more, so neither steals the other's CPU. The bot's CPU time is read
from ``/proc/<pid>/stat`` (user + system, all threads) between the moment it polls (its first
``getUpdates`` is waiting or answered) and its last reply; its peak RSS is ``VmHWM`` from
``/proc/<pid>/status``. Throughput, latency and the order, loss and duplicate checks come from
:func:`tgrunner.testing.load.run_load`.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgrunner.testing import FakeTelegram
from tgrunner.testing.load import LoadPlan, run_load, send_methods_latency

__all__ = [
    "BENCH",
    "ROWS",
    "SCRATCH",
    "Row",
    "RowFailed",
    "blank_result",
    "missing",
    "pin_harness",
    "run_row",
    "run_together",
]

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCRATCH = BENCH / ".scratch"
NODE_MODULES = SCRATCH / "node_modules"
LOGS = SCRATCH / "logs"

# Seconds a bot may take from its start to its first getUpdates (imports included).
START_TIMEOUT = 60.0
# Seconds each of two bots run side by side has the bot's core before the other's turn.
TURN = 0.1
# Seconds a bot may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class RowFailed(Exception):
    """The bot of a row did not start or did not poll; the message says why."""


@dataclass(frozen=True, slots=True)
class Row:
    """One bot under one runner.

    - ``key``: its name on the command line (``--rows``).
    - ``label``: its name in the table and the chart.
    - ``framework``: ``tgrunner``, ``aiogram``, ``ptb`` or ``grammy``; rows of a framework are
      compared with the best row of that framework on its own runner.
    - ``own_runner``: True when the framework's own runner drives the bot (not tgrunner).
    - ``argv``: the command, given the API URL and the token.
    """

    key: str
    label: str
    framework: str
    own_runner: bool
    argv: Callable[[str, str], list[str]] = field(repr=False)

    @property
    def node(self) -> bool:
        return self.framework == "grammy"


def _tgrunner(
    target: str, *, strict: bool = False, extra: tuple[str, ...] = ()
) -> Callable[[str, str], list[str]]:
    def argv(url: str, token: str) -> list[str]:
        cmd = [sys.executable, "-m", "tgrunner", "run", target, "--api-url", url, "--token", token]
        cmd += extra
        if strict:
            return [*cmd, "--no-journal"]
        # A fresh data dir per run: the fake reuses its bot and update ids from run to run.
        data = SCRATCH / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        return [*cmd, "--data-dir", str(data)]

    return argv


def _python(module: str, mode: str) -> Callable[[str, str], list[str]]:
    return lambda url, token: [sys.executable, "-m", module, mode]


def _node(mode: str) -> Callable[[str, str], list[str]]:
    return lambda url, token: ["node", str(BENCH / "bots" / "grammy_echo.cjs"), mode]


ROWS: tuple[Row, ...] = (
    Row("native", "tgrunner native", "tgrunner", False, _tgrunner("bench.bots.native_echo:router")),
    Row(
        "native-metrics",
        "tgrunner native, --metrics on",
        "tgrunner",
        False,
        _tgrunner("bench.bots.native_echo:router", extra=("--metrics", "127.0.0.1:0")),
    ),
    Row(
        "native-strict",
        "tgrunner native, strict offsets (--no-journal)",
        "tgrunner",
        False,
        _tgrunner("bench.bots.native_echo:router", strict=True),
    ),
    Row(
        "tg-aiogram",
        "tgrunner + aiogram",
        "aiogram",
        False,
        _tgrunner("bench.bots.aiogram_echo:dp"),
    ),
    Row(
        "tg-aiogram-strict",
        "tgrunner + aiogram, strict offsets",
        "aiogram",
        False,
        _tgrunner("bench.bots.aiogram_echo:dp", strict=True),
    ),
    Row("tg-ptb", "tgrunner + PTB", "ptb", False, _tgrunner("bench.bots.ptb_echo:application")),
    Row(
        "tg-ptb-strict",
        "tgrunner + PTB, strict offsets",
        "ptb",
        False,
        _tgrunner("bench.bots.ptb_echo:application", strict=True),
    ),
    Row(
        "aiogram-tasks",
        "aiogram start_polling (handle_as_tasks=True)",
        "aiogram",
        True,
        _python("bench.bots.aiogram_echo", "tasks"),
    ),
    Row(
        "aiogram-seq",
        "aiogram start_polling (handle_as_tasks=False)",
        "aiogram",
        True,
        _python("bench.bots.aiogram_echo", "sequential"),
    ),
    Row(
        "ptb-concurrent",
        "PTB run_polling (concurrent_updates=True)",
        "ptb",
        True,
        _python("bench.bots.ptb_echo", "concurrent"),
    ),
    Row(
        "ptb-seq",
        "PTB run_polling (sequential)",
        "ptb",
        True,
        _python("bench.bots.ptb_echo", "sequential"),
    ),
    Row("grammy-runner", "grammY runner run() + sequentialize", "grammy", True, _node("runner")),
    Row("grammy-start", "grammY bot.start()", "grammy", True, _node("start")),
)


def two_cores() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 and {0, 1} <= os.sched_getaffinity(0)


def pin_harness() -> bool:
    """Pin this process to core 0 when cores 0 and 1 are both ours; say whether it did."""
    if not two_cores():
        return False
    os.sched_setaffinity(0, {0})
    return True


def _pin_bot() -> None:
    # Runs in the child before exec, so every thread the bot starts (Node's too) inherits it.
    os.sched_setaffinity(0, {1})


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, all its threads, in seconds (None: gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM), in MB (None: gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def _tail(path: Path, lines: int = 2) -> str:
    """The last lines of a bot's log (where a traceback names its error), and the log's path."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    last = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return f"{' / '.join(last)[-400:]} (log: {shown})"


def _polling(tg: FakeTelegram) -> bool:
    if tg.state.primary.long_poll is not None:
        return True
    return any(r.method == "getUpdates" for r in tg.requests)


async def _wait_polling(tg: FakeTelegram, proc: Process, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _polling(tg):
        if proc.returncode is not None:
            raise RowFailed(f"the bot exited with {proc.returncode} before polling: {_tail(log)}")
        if time.monotonic() > deadline:
            raise RowFailed(f"the bot did not poll within {START_TIMEOUT:g} s: {_tail(log)}")
        # A waiting long poll is not a recorded request, so nothing can be awaited for it:
        # wake on every request, and at least every 50 ms to look at the poll.
        try:
            await tg.wait_for(lambda: _polling(tg), timeout=0.05)
        except TimeoutError:
            pass


async def _stop(proc: Process) -> tuple[int, bool]:
    """SIGTERM the bot by its PID, SIGKILL it after STOP_TIMEOUT; return its exit code and
    whether it had to be killed."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), STOP_TIMEOUT), False
    except TimeoutError:
        proc.kill()
        return await proc.wait(), True


def _env(url: str, token: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BOT_TOKEN=token,
        BENCH_API_URL=url,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        NODE_PATH=str(NODE_MODULES),
    )
    return env


def missing(row: Row) -> str | None:
    """Why ``row`` cannot run on this machine, or None."""
    if row.node:
        if shutil.which("node") is None:
            return "Node is not installed"
        if not (NODE_MODULES / "grammy").is_dir() or not (NODE_MODULES / "@grammyjs").is_dir():
            return "grammy / @grammyjs/runner are not installed in bench/.scratch"
    return None


def blank_result(row: Row, scenario: str) -> dict[str, Any]:
    """What names a result: the row, its framework and runner, the scenario; no measures."""
    return {
        "row": row.key,
        "label": row.label,
        "framework": row.framework,
        "own_runner": row.own_runner,
        "scenario": scenario,
        "note": "",
    }


@dataclass
class _Bot:
    """A row's bot while it runs, then how it ended."""

    row: Row
    tg: FakeTelegram
    proc: Process
    log: Path
    code: int | None = None
    killed: bool = False


@asynccontextmanager
async def _running(row: Row, scenario: str, plan: LoadPlan, pin: bool) -> AsyncIterator[_Bot]:
    """Start ``row``'s bot against a FakeTelegram of its own, yield it once it polls, then
    stop it (RowFailed when it never polls)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{row.key}-{scenario}.log"
    async with FakeTelegram(faults=send_methods_latency(plan.latency_ms)) as tg:
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *row.argv(tg.api_url, tg.token),
                cwd=REPO,
                env=_env(tg.api_url, tg.token),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                preexec_fn=_pin_bot if pin else None,
            )
        bot = _Bot(row, tg, proc, log)
        try:
            await _wait_polling(tg, proc, log)
            yield bot
        finally:
            bot.code, bot.killed = await _stop(proc)


async def run_row(row: Row, scenario: str, plan: LoadPlan, *, pin: bool) -> dict[str, Any]:
    """Run ``row`` under ``plan`` and return its measures (``skipped``: why it could not run)."""
    return (await run_together([row], scenario, plan, pin=pin))[0]


async def run_together(
    rows: list[Row], scenario: str, plan: LoadPlan, *, pin: bool
) -> list[dict[str, Any]]:
    """Run the bots of ``rows`` at once, each under ``plan`` against its own FakeTelegram,
    and return the measures of each.

    Two bots take turns on the bot's core, every ``TURN`` seconds (SIGSTOP, SIGCONT), until
    one has answered everything: they see the same host within a fraction of a second, so the
    ratio of their CPU per update is their cost ratio whatever the host's speed does over the
    run, and neither evicts the other's cache while it runs. Their latencies mean nothing
    then (each is stopped half the time)."""
    results = [blank_result(row, scenario) for row in rows]
    reasons = [reason for reason in map(missing, rows) if reason]
    if reasons:
        return [{**r, "skipped": reasons[0]} for r in results]
    measured: list[dict[str, Any]] = [{} for _ in rows]
    async with AsyncExitStack() as stack:
        bots: list[_Bot] = []
        try:
            for row in rows:
                bots.append(await stack.enter_async_context(_running(row, scenario, plan, pin)))
        except RowFailed as exc:
            return [{**r, "skipped": str(exc)} for r in results]
        # The load driver must not stall on collections of the harness's own heap (earlier
        # rows, matplotlib): that would show up as the bot's latency.
        gc.collect()
        gc.freeze()
        own_start, wall_start = time.process_time(), time.monotonic()

        async def load(bot: _Bot, out: dict[str, Any]) -> None:
            cpu_start = cpu_seconds(bot.proc.pid)
            out["report"] = await run_load(bot.tg, plan)
            cpu_end = cpu_seconds(bot.proc.pid)
            out["cpu"] = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
            out["rss"] = peak_rss_mb(bot.proc.pid)
            out["alive"] = bot.proc.returncode is None

        loads = [asyncio.ensure_future(load(b, m)) for b, m in zip(bots, measured, strict=True)]
        if len(bots) == 2:
            await _take_turns([b.proc for b in bots], loads)
        await asyncio.gather(*loads)
        own_share = (time.process_time() - own_start) / (time.monotonic() - wall_start)
    return [
        _result(bot, result, m, own_share, plan)
        for bot, result, m in zip(bots, results, measured, strict=True)
    ]


async def _take_turns(procs: list[Process], loads: list[asyncio.Future[None]]) -> None:
    """Let one of ``procs`` run at a time, swapping every TURN seconds, until a load is done;
    then let both run (the other finishes alone)."""
    running = 0
    try:
        _signal(procs[1], signal.SIGSTOP)
        while not any(load.done() for load in loads):
            await asyncio.wait(loads, timeout=TURN, return_when=asyncio.FIRST_COMPLETED)
            if any(load.done() for load in loads):
                break
            _signal(procs[running], signal.SIGSTOP)
            running ^= 1
            _signal(procs[running], signal.SIGCONT)
    finally:
        for proc in procs:
            _signal(proc, signal.SIGCONT)


def _signal(proc: Process, sig: int) -> None:
    # A bot that died has no turn to give or take: its row's note says it died.
    if proc.returncode is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _result(
    bot: _Bot, result: dict[str, Any], m: dict[str, Any], own_share: float, plan: LoadPlan
) -> dict[str, Any]:
    report = m["report"]
    handled = max(report.replied, 1)
    result.update(report.as_dict())
    result.update(
        cpu_us=None if m["cpu"] is None else round(m["cpu"] / handled * 1e6, 1),
        rss_mb=m["rss"],
        harness_cpu_share=round(own_share, 2),
    )
    notes = []
    if own_share >= 0.9:
        # Then the row measures FakeTelegram as much as the bot: its updates/s is a floor.
        notes.append(f"FakeTelegram's core was {own_share:.0%} busy")
    if report.lost:
        # run_load returns early only once every message is answered.
        notes.append(f"{report.lost} unanswered when the load timed out ({plan.timeout:g} s)")
    if not m["alive"]:
        notes.append(f"the bot died during the run (exit {bot.code}): {_tail(bot.log)}")
    elif bot.killed:
        notes.append(f"killed: still running {STOP_TIMEOUT:g} s after SIGTERM")
    elif bot.code not in (0, -signal.SIGTERM):
        notes.append(f"exit code {bot.code} after SIGTERM")
    result["note"] = "; ".join(notes)
    return result
