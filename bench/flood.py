"""``python -m bench --scenario flood``: outgoing flood control, tgrunner against PTB's
``AIORateLimiter``, on a FakeTelegram that enforces Telegram's limits.

FakeTelegram (in this process) answers 429 with ``retry_after`` as Telegram does past its
documented limits (:data:`bench.flood_parts.LIMITS`): 1 message/s per chat with a burst of 3
in a private chat, 20/min per group. Its global 30/s is on in the broadcast part only: Telegram
documents it for bulk notifications, tgrunner's replies do not count against its bulk bucket
unless ``--flood-replies-bulk``, and the fake cannot tell a reply from a notification. Every
row is a bot in its own process (nothing pinned: the rates here are far below what a core
does). Three parts:

- **echo3**: each of ``--chats`` chats (200) sends 10 messages at once to a bot that answers
  each with 3 messages (tgrunner with ``--workers 2``): 429s, what was delivered once and in
  order, and the throughput as a share of what the limits allow (a chat's 30 answers need 27 s
  at best: 3 at once, then one a second);
- **storm**: 1,000 chats take turns at 25 messages/s (under PTB's 30/s, so that PTB's own
  limiter keeps up) for ``--seconds`` (30) per phase, first calm, then with FakeTelegram
  answering 429 (``retry_after`` 10) to every send into 10 of the chats: the other 990 chats'
  reply p99, both times;
- **broadcast**: ``bot.broadcast()`` to 10,000 chats at the bulk rate, the bot SIGKILLed in
  the middle and started again (:mod:`bench.flood_broadcast`).

The rows that need ``tgrunner run --flood`` (or ``bot.broadcast``) are skipped, with the
reason, by a tgrunner that does not have it. Results: ``flood.md``, ``flood.png``,
``flood.json`` (:mod:`bench.flood_report`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from bench import flood_broadcast, flood_parts, flood_report
from bench.flood_broadcast import BULK_RATE, BroadcastPlan
from bench.flood_parts import LIMITS, EchoPlan, StormPlan
from bench.harness import LOGS, REPO, SCRATCH, RowFailed, _env, _tail, _wait_polling
from bench.proctree import tree_cpu
from bench.report import pick_rows
from bench.workers import _wait_line
from tgrunner.testing import FakeTelegram

__all__ = [
    "FLOOD_ROWS",
    "PARTS",
    "FloodBot",
    "FloodRow",
    "Plans",
    "aiolimiter",
    "flag_missing",
    "plans",
    "run",
]

PARTS = ("echo3", "storm", "broadcast")
READY = "worker processes ready"


@dataclass(frozen=True, slots=True)
class FloodRow:
    """One bot: ``flood`` is the ``--flood`` mode it passes (None: no flag), ``workers`` its
    ``--workers`` (0: the framework's own runner), ``parts`` the parts it runs in."""

    key: str
    label: str
    framework: str
    parts: tuple[str, ...]
    flood: str | None = None
    workers: int = 2

    def argv(self, part: str, url: str, token: str, data: Path) -> list[str]:
        if self.framework == "ptb":
            return [sys.executable, "-m", "bench.bots.ptb_flood", "3" if part == "echo3" else "1"]
        if part == "broadcast":
            target = "bench.bots.flood_broadcast:router"
        else:
            target = f"bench.bots.flood_echo:{'echo3' if part == 'echo3' else 'echo1'}"
        cmd = [sys.executable, "-m", "tgrunner", "run", target, "--api-url", url,
               "--token", token, "--data-dir", str(data)]  # fmt: skip
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        if self.flood is not None:
            cmd += ["--flood", self.flood]
        return cmd


_ECHO = ("echo3", "storm")
FLOOD_ROWS: tuple[FloodRow, ...] = (
    FloodRow("tg-telegram", "tgrunner --workers 2 --flood telegram", "tgrunner", _ECHO, "telegram"),
    FloodRow(
        "tg-reactive",
        "tgrunner --workers 2 --flood reactive (default)",
        "tgrunner",
        _ECHO,
        "reactive",
    ),
    FloodRow("tg-off", "tgrunner --workers 2 --flood off", "tgrunner", ("echo3",), "off"),
    FloodRow("tg-noflag", "tgrunner --workers 2, no --flood flag", "tgrunner", _ECHO),
    FloodRow(
        "ptb-limiter",
        "PTB AIORateLimiter(max_retries=3), concurrent, run_polling",
        "ptb",
        _ECHO,
        workers=0,
    ),
    FloodRow(
        "tg-broadcast",
        "tgrunner bot.broadcast(), SIGKILL + restart",
        "tgrunner",
        ("broadcast",),
        workers=0,
    ),
)


@dataclass(frozen=True, slots=True)
class Plans:
    echo3: EchoPlan
    storm: StormPlan
    broadcast: BroadcastPlan


def plans(args: argparse.Namespace) -> Plans:
    """Each part's load: the issue's sizes, or a few seconds' worth with ``--quick``."""
    echo = EchoPlan(chats=20, per_chat=2, timeout=60, quiet=3) if args.quick else EchoPlan()
    if args.chats:
        echo = replace(echo, chats=args.chats)
    if args.timeout:
        echo = replace(echo, timeout=args.timeout)
    storm = StormPlan()
    if args.quick:
        storm = StormPlan(chats=100, stormed=2, seconds=4, retry_after=2, settle=2)
    if args.seconds:
        storm = replace(storm, seconds=args.seconds)
    broadcast = BroadcastPlan(chats=200, quiet=10) if args.quick else BroadcastPlan()
    return Plans(echo, storm, broadcast)


def describe(p: Plans) -> dict[str, str]:
    e, s, b = p.echo3, p.storm, p.broadcast
    allowed = f"{e.expected / e.ideal_seconds:,.0f}" if e.ideal_seconds else "any number of"
    return {
        "echo3": (
            f"{e.chats:,} chats each send {e.per_chat} messages at once (a chat's messages are "
            f"consecutive updates), each answered with {e.replies}: {e.expected:,} sends. The "
            f"limits allow them in {e.ideal_seconds:g} s at best ({allowed} messages/s). A row "
            f"stops waiting after {e.quiet:g} s without a send, or at {e.timeout:g} s."
        ),
        "storm": (
            f"{s.chats:,} chats take turns at {s.rate:g} messages/s for {s.seconds:g} s per "
            f"phase, each answered with one message; in the storm phase FakeTelegram answers "
            f"429 (retry_after {s.retry_after}) to every send into {s.stormed} of the chats. "
            f"Latency is from a message's push to its answer, over the other "
            f"{s.chats - s.stormed:,} chats."
        ),
        "broadcast": (
            f"bot.broadcast() to {b.chats:,} chats; FakeTelegram also allows at most "
            f"{BULK_RATE:g} messages/s over all chats (a burst of {BULK_RATE:g}); the bot is "
            f"SIGKILLed once {b.kill_at:.0%} have it and started again at once."
        ),
    }


def aiolimiter() -> str:
    """The installed aiolimiter's version (PTB's AIORateLimiter needs it), or "not installed"."""
    try:
        return importlib.metadata.version("aiolimiter")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def flag_missing() -> str | None:
    """Why this tgrunner cannot run the ``--flood`` rows (None: ``tgrunner run`` has it)."""
    done = subprocess.run(
        [sys.executable, "-m", "tgrunner", "run", "--help"],
        cwd=REPO, env=_env("", ""), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if re.search(r"--flood(?![-\w])", done.stdout):
        return None
    return (
        "`tgrunner run` has no --flood option in this build (issue 13's flood-control CLI is "
        "not merged yet)"
    )


class FloodBot:
    """One row's bot: started (in a process group of its own), SIGKILLed (the whole group)
    and started again on the same data dir; its output appended to one log."""

    def __init__(
        self, row: FloodRow, part: str, tg: FakeTelegram, log: Path, env: dict[str, str]
    ) -> None:
        self.row, self.part, self.tg, self.log = row, part, tg, log
        self.data = SCRATCH / "flood-data"
        shutil.rmtree(self.data, ignore_errors=True)  # fresh: the fake reuses update ids
        self.data.mkdir(parents=True)
        self.env = {**_env(tg.api_url, tg.token), **env}
        self.proc: asyncio.subprocess.Process | None = None
        self._out: TextIO | None = None

    async def start(self, *, wait: bool = True) -> float:
        """Start the bot; with ``wait``, return once it polls (and its workers are ready).
        Seconds it took."""
        began = time.monotonic()
        self._out = self._out or self.log.open("a")
        self.proc = await asyncio.create_subprocess_exec(
            *self.row.argv(self.part, self.tg.api_url, self.tg.token, self.data),
            cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        if wait:
            await _wait_polling(self.tg, self.proc, self.log)
            if self.row.workers > 1:
                await _wait_line(self.log, READY, self.proc)
        return time.monotonic() - began

    async def kill(self) -> None:
        """SIGKILL the bot's process group (the bot and its worker processes) and reap it."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await self.proc.wait()

    async def stop(self) -> tuple[int | None, bool]:
        """SIGTERM, SIGKILL after 15 s; the exit code (None: never started), and whether it
        had to be killed."""
        if self.proc is None:
            return None, False
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        killed = False
        try:
            await asyncio.wait_for(self.proc.wait(), 15.0)
        except TimeoutError:
            await self.kill()
            killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a straggling worker, if any
        except (ProcessLookupError, PermissionError):
            pass
        if self._out is not None:
            self._out.close()
        return self.proc.returncode, killed


def _base(row: FloodRow, part: str) -> dict[str, Any]:
    return {"row": row.key, "label": row.label, "framework": row.framework, "part": part,
            "flood": row.flood, "note": ""}  # fmt: skip


async def run_part(row: FloodRow, part: str, p: Plans) -> dict[str, Any]:
    """Run ``row`` in ``part`` and return its measures (``skipped``: why it could not)."""
    result = _base(row, part)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"flood-{row.key}-{part}.log"
    log.unlink(missing_ok=True)
    limits = replace(LIMITS, global_per_second=BULK_RATE) if part == "broadcast" else LIMITS
    env = {"BENCH_BROADCAST_CHATS": f"{flood_broadcast.BROADCAST_CHAT}:{p.broadcast.chats}"}
    async with FakeTelegram(flood=limits) as tg:
        bot = FloodBot(row, part, tg, log, env)
        try:
            try:
                await bot.start()
                if part != "broadcast":
                    await flood_parts.warm_up(tg, 3 if part == "echo3" else 1)
            except (RowFailed, TimeoutError) as exc:
                return {**result, "skipped": str(exc) or f"no warm-up answer: {_tail(log)}"}
            assert bot.proc is not None
            gc.collect()
            gc.freeze()
            cpu0 = tree_cpu(bot.proc.pid)
            if part == "echo3":
                measures = await flood_parts.echo3(tg, p.echo3)
            elif part == "storm":
                measures = await flood_parts.storm(tg, p.storm)
            else:
                try:
                    measures = await flood_broadcast.broadcast(
                        tg, p.broadcast, bot.kill, lambda: bot.start(wait=False)
                    )
                except RuntimeError as exc:
                    return {**result, "skipped": f"{exc}: {_tail(log)}"}
            cpu1 = tree_cpu(bot.proc.pid)
            alive = bot.proc.returncode is None
        finally:
            code, killed = await bot.stop()
    result.update(measures)
    sent = measures.get("delivered") or 0
    if part == "echo3" and cpu0 is not None and cpu1 is not None and sent:
        result["cpu_us"] = round((cpu1.tree - cpu0.tree) / sent * 1e6, 1)
    notes = []
    if not alive:
        notes.append(f"the bot died during the run (exit {code}): {_tail(log)}")
    elif killed:
        notes.append("killed: still running 15 s after SIGTERM")
    elif code not in (0, -signal.SIGTERM, None):
        notes.append(f"exit code {code} after SIGTERM")
    result["note"] = "; ".join(notes)
    return result


def _line(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"  skipped: {r['skipped']}"
    if r["part"] == "echo3":
        share = "—" if r["share"] is None else f"{r['share']:.1%}"
        text = (
            f"  {r['delivered']:,}/{r['expected']:,} delivered in {r['seconds']:.1f} s "
            f"({r['throughput']:,.0f}/s, {share} of the allowed {r['allowed_rate']:,.0f}/s)  "
            f"429s {r['floods']:,}  lost {r['lost']:,}  duplicates {r['duplicates']}  "
            f"violations {r['violations']}  ({r['ended']})"
        )
    elif r["part"] == "storm":
        calm, hit = r["calm"], r["storm"]
        text = (
            f"  others' p99 calm {calm['p99_ms']} ms, storm {hit['p99_ms']} ms (rise "
            f"{r['p99_rise_ms']} ms; max {hit['max_ms']} ms)  lost {calm['lost']}+{hit['lost']}"
            f"  stormed: {r['stormed_delivered']}/{r['stormed_messages']} delivered after, "
            f"{r['stormed_floods']} 429s  others' 429s {calm['floods']}+{hit['floods']}"
        )
    else:
        text = (
            f"  {r['delivered']:,}/{r['chats']:,} delivered, lost {r['lost']}, duplicates "
            f"{r['duplicates']}, 429s {r['floods']}; {r['rate_before']}/s before the kill, "
            f"{r['rate_after']}/s after, down {r['downtime_s']} s"
        )
    return text + (f"  ({r['note']})" if r["note"] else "")


async def _run_all(
    rows: list[FloodRow], p: Plans, flag: str | None, broadcast: str | None
) -> list[dict[str, Any]]:
    results = []
    for part in PARTS:
        for row in rows:
            if part not in row.parts:
                continue
            print(f"- [{part}] {row.label}", flush=True)
            if row.flood is not None and flag:
                result = {**_base(row, part), "skipped": flag}
            elif part == "broadcast" and broadcast:
                result = {**_base(row, part), "skipped": broadcast}
            else:
                try:
                    result = await run_part(row, part, p)
                except Exception as exc:  # one broken row must not cost the others
                    why = f"the harness failed: {type(exc).__name__}: {exc}"
                    result = {**_base(row, part), "skipped": why}
            print(_line(result), flush=True)
            results.append(result)
    return results


def run(
    args: argparse.Namespace,
    argv: list[str],
    info: dict[str, str],
    *,
    run_on: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run,
) -> int:
    """The flood scenario, from the parsed ``python -m bench`` arguments; ``run_on`` runs the
    harness's coroutine (on asyncio or uvloop)."""
    rows = pick_rows(FLOOD_ROWS, args.rows)
    if rows is None:
        return 2
    p = plans(args)
    info["pinning"] = "nothing pinned (the bots send at most a few hundred messages/s)"
    info["FakeTelegram's limits"] = (
        f"{LIMITS.per_chat_per_second:g}/s per chat (private burst {LIMITS.private_burst}), "
        f"{LIMITS.per_group_per_minute:g}/min per group; {BULK_RATE:g}/s over all chats in the "
        "broadcast part only"
    )
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    described = describe(p)
    for part in PARTS:
        print(f"{part}: {described[part]}", flush=True)
    flag, broadcast = flag_missing(), flood_broadcast.missing()
    started = time.monotonic()
    results = run_on(_run_all(rows, p, flag, broadcast))
    info["load average at end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    info["run took"] = f"{time.monotonic() - started:.0f} s"
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv)
    flood_report.write(args.out, results, info, described, command)
    print(f"\nwrote {args.out / 'flood.md'}, flood.png and flood.json", flush=True)
    return 0
