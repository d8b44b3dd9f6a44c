"""``tgrunner demo``: the demo bot in its own process against an embedded FakeTelegram.

This is CLI code: it writes a progress bar and a summary to a stream (stdout by default).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from typing import TextIO

from tgrunner.testing.fake.server import FakeTelegram
from tgrunner.testing.load import LoadPlan, LoadReport, run_load, send_methods_latency

__all__ = ["run_demo"]

_BAR = 30


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


async def _demo(plan: LoadPlan, out: TextIO, journal: bool) -> LoadReport:
    # A fresh data dir per run: the fake's bot and its update ids are the same every run.
    scratch = tempfile.TemporaryDirectory(prefix="tgrunner-demo-")
    extra = ["--data-dir", scratch.name] if journal else ["--no-journal"]
    async with FakeTelegram(faults=send_methods_latency(plan.latency_ms)) as tg:
        out.write(f"FakeTelegram at {tg.api_url}; starting the demo bot (tgrunner.cli.demo_bot)\n")
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tgrunner",
            "run",
            "tgrunner.cli.demo_bot:router",
            "--api-url",
            tg.api_url,
            "--token",
            tg.token,
            *extra,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            await tg.wait_until_polling(timeout=30)
            how = "all at once" if plan.rate <= 0 else f"at {plan.rate:,.0f}/s"
            out.write(
                f"{plan.updates} messages from {plan.chats} chats, {how}, "
                f"API latency {plan.latency_ms:g} ms\n"
            )
            progress = _Progress(out)
            report = await run_load(tg, plan, progress=progress)
            progress.end()
        finally:
            if bot.returncode is None:
                bot.send_signal(signal.SIGTERM)
            try:
                _, err = await asyncio.wait_for(bot.communicate(), 30)
            except TimeoutError:
                bot.kill()
                _, err = await bot.communicate()
        if bot.returncode != 0:
            text = (err or b"").decode(errors="replace")
            out.write(f"the demo bot exited with {bot.returncode}:\n{text[-2000:]}\n")
    scratch.cleanup()
    return report


def run_demo(
    *,
    chats: int = 1000,
    updates: int = 20_000,
    latency_ms: float = 0.0,
    rate: float = 0.0,
    journal: bool = True,
    out: TextIO | None = None,
) -> int:
    """Run the demo; return 0 when every message got exactly one reply, in order.

    Defaults: 1000 chats, 20,000 messages all at once, no API latency, the intake journal in
    a temporary data dir (``journal=False``: strict offsets).
    """
    out = out or sys.stdout
    plan = LoadPlan(chats=chats, updates=updates, latency_ms=latency_ms, rate=rate)
    report = asyncio.run(_demo(plan, out, journal))
    _summary(report, out)
    ok = report.lost == 0 and report.duplicates == 0 and report.violations == 0
    return 0 if ok else 1
