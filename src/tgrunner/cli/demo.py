"""``tgrunner demo``: the demo bot in its own process against an embedded FakeTelegram.

This is CLI code: it writes a progress bar and a summary to a stream (stdout by default), and
what went wrong to stderr. When the bot's process ends before the load is done, the demo says
so at once, with the end of the bot's stderr, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable
from typing import Any, TextIO

from tgrunner.cli.common import checked, number
from tgrunner.errors import ConfigError
from tgrunner.executors.processes import resolve_workers
from tgrunner.testing.fake.server import FakeTelegram
from tgrunner.testing.load import LoadPlan, LoadReport, run_load, send_methods_latency

__all__ = ["BotDied", "add_parser", "run_demo"]

_BAR = 30
_TAIL = 40  # lines of the bot's stderr kept, to show when it dies

DESCRIPTION = """\
Run an example echo bot (tgrunner.cli.demo_bot, with 'tgrunner run') in its own process
against an embedded FakeTelegram, send it messages from many simulated chats, and check every
reply: per-chat order, nothing lost, nothing twice. Prints the throughput and latency, and
exits 0 when every message got exactly one reply, in order; else 1.
"""

EPILOG = """\
environment:
  TGRUNNER_LOG_LEVEL   debug, info (default), warning or error
  TGRUNNER_*           the bot runs as 'tgrunner run' and reads its settings from them
                       (see 'tgrunner run --help'); its data dir is a temporary folder

examples:
  tgrunner demo
  tgrunner demo --chats 100 --updates 5000 --latency 20
  tgrunner demo --rate 2000 --no-journal
  tgrunner demo --workers 2          (the bot in 2 worker processes)
"""


class BotDied(Exception):
    """The demo bot's process ended before the load was done."""

    def __init__(self, code: int, stderr: str) -> None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        super().__init__(f"the demo bot {how}")
        self.code = code
        self.stderr = stderr


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run an example bot against an embedded FakeTelegram",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    whole = number(int, low=1)
    p.add_argument("--chats", type=whole, default=1000, help="simulated chats (default 1000)")
    p.add_argument("--updates", type=whole, default=20000, help="messages to send (default 20000)")
    p.add_argument(
        "--latency",
        type=number(float, low=0),
        default=0.0,
        metavar="MS",
        help="API latency in ms added to every call but getUpdates (default 0)",
    )
    p.add_argument(
        "--rate",
        type=number(float, low=0),
        default=0.0,
        help="updates per second offered (default 0: all at once)",
    )
    p.add_argument(
        "--no-journal",
        action="store_true",
        help="run the bot with strict offsets instead of the intake journal (default: the journal)",
    )
    p.add_argument(
        "--workers",
        type=checked(_workers),
        default=1,
        metavar="N|auto",
        help="run the bot's handlers in N worker processes, as 'tgrunner run --workers' does "
        "(default 1: none)",
    )
    p.set_defaults(func=_cmd_demo)
    return p


def _workers(text: str) -> int:
    try:
        return resolve_workers(text)
    except ConfigError:
        raise ValueError("must be a whole number of at least 1, or auto (the CPUs)") from None


def _cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(
        chats=args.chats,
        updates=args.updates,
        latency_ms=args.latency,
        rate=args.rate,
        journal=not args.no_journal,
        workers=args.workers,
    )


class _Progress:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        if self.tty:
            filled = int(frac * _BAR)
            self.out.write(f"\r  [{'#' * filled}{'.' * (_BAR - filled)}] {done}/{total}")
            self.out.flush()
        elif int(frac * 10) > self.last_decile:
            self.last_decile = int(frac * 10)
            self.out.write(f"  {done}/{total} replied\n")
            self.out.flush()

    def end(self) -> None:
        if self.tty:
            self.out.write("\n")


def _summary(report: LoadReport, out: TextIO) -> None:
    rows = [
        ("updates", f"{report.updates}"),
        ("replied", f"{report.replied}"),
        ("throughput", f"{report.throughput:,.0f} updates/s"),
        ("latency p50", f"{report.p50_ms:.1f} ms"),
        ("latency p99", f"{report.p99_ms:.1f} ms"),
        ("order violations", f"{report.violations}"),
        ("lost", f"{report.lost}"),
        ("duplicates", f"{report.duplicates}"),
    ]
    out.write("\nSummary\n")
    for name, value in rows:
        out.write(f"  {name:<17} {value}\n")


class _Bot:
    """The demo bot's process; its stderr is read as it comes (a full pipe would block it),
    and its last lines kept."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
        self.reader = asyncio.ensure_future(self._read())
        self.ended = asyncio.ensure_future(self._ended())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.tail.append(line.decode(errors="replace"))

    async def _ended(self) -> int:
        code = await self.proc.wait()
        await self.reader
        return code

    async def until_done(self, work: Awaitable[Any]) -> Any:
        """``work``'s result; BotDied when the process ends first."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, self.ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise BotDied(self.ended.result(), "".join(self.tail))
        return task.result()

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                return await asyncio.shield(self.ended)
        except TimeoutError:
            self.proc.kill()
            return await self.ended


async def _demo(plan: LoadPlan, out: TextIO, journal: bool, workers: int) -> LoadReport:
    # A fresh data dir per run: the fake's bot and its update ids are the same every run.
    with tempfile.TemporaryDirectory(prefix="tgrunner-demo-") as scratch:
        extra = ["--data-dir", scratch] if journal else ["--no-journal"]
        if workers > 1:
            extra += ["--workers", str(workers)]
        async with FakeTelegram(faults=send_methods_latency(plan.latency_ms)) as tg:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tgrunner", "run", "tgrunner.cli.demo_bot:router",
                "--api-url", tg.api_url, *extra,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "TGRUNNER_TOKEN": tg.token},
            )  # fmt: skip
            where = f", {workers} worker processes" if workers > 1 else ""
            out.write(
                f"FakeTelegram at {tg.api_url}; starting the demo bot (tgrunner.cli.demo_bot, "
                f"pid {proc.pid}{where})\n"
            )
            out.flush()
            bot = _Bot(proc)
            try:
                await bot.until_done(tg.wait_until_polling(timeout=60))
                how = "all at once" if plan.rate <= 0 else f"at {plan.rate:,.0f}/s"
                out.write(
                    f"{plan.updates} messages from {plan.chats} chats, {how}, "
                    f"API latency {plan.latency_ms:g} ms\n"
                )
                out.flush()
                progress = _Progress(out)
                report: LoadReport = await bot.until_done(run_load(tg, plan, progress=progress))
                progress.end()
            finally:
                code = await bot.stop()
            if code != 0:
                raise BotDied(code, "".join(bot.tail))
    return report


def run_demo(
    *,
    chats: int = 1000,
    updates: int = 20_000,
    latency_ms: float = 0.0,
    rate: float = 0.0,
    journal: bool = True,
    workers: int = 1,
    out: TextIO | None = None,
) -> int:
    """Run the demo; return 0 when every message got exactly one reply, in order, else 1.

    Defaults: 1000 chats, 20,000 messages all at once, no API latency, the intake journal in
    a temporary data dir (``journal=False``: strict offsets), no worker processes
    (``workers``: how many the bot runs its handlers in). When the bot's process ends
    early (or not cleanly), the end of its stderr goes to stderr and 1 is returned.
    """
    out = out or sys.stdout
    plan = LoadPlan(chats=chats, updates=updates, latency_ms=latency_ms, rate=rate)
    try:
        report = asyncio.run(_demo(plan, out, journal, workers))
    except BotDied as exc:
        out.flush()
        tail = exc.stderr.rstrip()
        said = f"; it said:\n{tail}" if tail else " without a word"
        sys.stderr.write(f"tgrunner demo: {exc}{said}\n")
        return 1
    _summary(report, out)
    ok = report.lost == 0 and report.duplicates == 0 and report.violations == 0
    return 0 if ok else 1
