"""``python -m bench --scenario webhook``: webhook intake, tgrunner against aiogram and PTB.

Every row is the same echo bot in its own process; FakeTelegram, in this process, delivers
its updates by webhook as Telegram does (up to ``max_connections`` = 100 POSTs at once, one
update in flight per chat, a non-2xx, a timeout or a broken connection retried with a fast
backoff: :class:`~tgrunner.testing.WebhookRetry` ``base=0.05, cap=1.0``). Three parts:

- **throughput**: ``--updates`` messages (default 10,000) over ``--chats`` chats (1,000),
  queued at once: updates/s, CPU µs per update of the bot's process tree, end-to-end latency,
  order violations, lost, duplicates;
- **ack**: ``--rate`` updates/s (2,000) for ``--seconds`` (5): the time from FakeTelegram's
  POST to the bot's 2xx (:class:`~tgrunner.testing.WebhookTimings`);
- **crash**: ``--updates`` messages offered at :data:`CRASH_RATE`/s, the bot's process group
  SIGKILLed ``--kills`` times (5) and started again each time; FakeTelegram resends what was
  not answered 2xx. Unanswered updates at the end, once FakeTelegram holds none, are updates
  the bot acknowledged and never handled: lost.

Pinning as in the peers benchmark (the harness on core 0, the bot on core 1) except the
``--workers 2`` row, whose bot runs on every core. Results: ``webhook.md``, ``webhook.png``
and ``webhook.json`` (:mod:`bench.webhook_report`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bench import webhook_report
from bench.harness import LOGS, REPO, SCRATCH, START_TIMEOUT, RowFailed, _env, _pin_bot, _tail
from bench.proctree import ALL_CPUS, tree_cpu, tree_rss_mb
from bench.report import pick_rows
from bench.workers import _warm_up
from tgrunner.testing import FakeTelegram, WebhookRetry, WebhookTimings
from tgrunner.testing.load import LoadPlan, run_load

__all__ = ["CRASH_RATE", "HOOK_ROWS", "HookRow", "plans", "run", "run_part"]

PARTS = ("throughput", "ack", "crash")
CRASH_RATE = 1000.0  # updates/s offered in the crash part
RETRY = WebhookRetry(base=0.05, cap=1.0)
HOOK_PATH = "/tg/hook"
# Seconds to wait, after a load, for FakeTelegram to hold no undelivered update.
SETTLE = 15.0
# After a load with unanswered messages: the bot is done once no request came for QUIET s
# (it may still be working through updates it acknowledged), or after SETTLE_MAX s.
QUIET = 2.0
SETTLE_MAX = 60.0


@dataclass(frozen=True, slots=True)
class HookRow:
    """One bot serving a webhook. ``pinned``: the bot runs on core 1 (else on every core);
    ``argv`` builds its command from the API URL, the token, the port and a data dir."""

    key: str
    label: str
    framework: str
    pinned: bool
    argv: Callable[[str, str, int, Path], list[str]]


def _tg(*extra: str) -> Callable[[str, str, int, Path], list[str]]:
    def argv(url: str, token: str, port: int, data: Path) -> list[str]:
        return [
            sys.executable, "-m", "tgrunner", "run", "bench.bots.native_echo:router",
            "--api-url", url, "--token", token, "--data-dir", str(data),
            "--webhook-url", f"http://127.0.0.1:{port}{HOOK_PATH}",
            "--listen", f"127.0.0.1:{port}", "--max-connections", "100", *extra,
        ]  # fmt: skip

    return argv


def _py(module: str) -> Callable[[str, str, int, Path], list[str]]:
    return lambda url, token, port, data: [sys.executable, "-m", module]


HOOK_ROWS: tuple[HookRow, ...] = (
    HookRow("tg-webhook", "tgrunner native webhook (journal on)", "tgrunner", True, _tg()),
    HookRow(
        "tg-webhook-w2",
        "tgrunner native webhook --workers 2 (unpinned)",
        "tgrunner",
        False,
        _tg("--workers", "2"),
    ),
    HookRow(
        "aiogram-webhook",
        "aiogram SimpleRequestHandler (handle_in_background=True)",
        "aiogram",
        True,
        _py("bench.bots.aiogram_webhook"),
    ),
    HookRow(
        "ptb-webhook", "PTB run_webhook (sequential)", "ptb", True, _py("bench.bots.ptb_webhook")
    ),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unpin() -> None:
    os.sched_setaffinity(0, ALL_CPUS)


class BotProcess:
    """The bot of one row and part: started, SIGKILLed (its whole process group) and started
    again on the same port and data dir; its output appended to one log."""

    def __init__(self, row: HookRow, tg: FakeTelegram, *, pin: bool, log: Path) -> None:
        self.row, self.tg, self.log = row, tg, log
        self.port = _free_port()
        self.data = SCRATCH / "webhook-data"
        shutil.rmtree(self.data, ignore_errors=True)  # fresh: the fake reuses update ids
        self.data.mkdir(parents=True)
        self.preexec = _pin_bot if pin and row.pinned else _unpin
        self.proc: asyncio.subprocess.Process | None = None
        self._out: TextIO | None = None

    async def start(self) -> float:
        """Start the bot; return once it has called setWebhook (seconds it took)."""
        began = time.monotonic()
        before = self.tg.state.primary.webhook  # setWebhook puts a new config there
        url, token = self.tg.api_url, self.tg.token
        env = {**_env(url, token), "BENCH_WEBHOOK_PORT": str(self.port)}
        self._out = self._out or self.log.open("a")
        self.proc = await asyncio.create_subprocess_exec(
            *self.row.argv(url, token, self.port, self.data),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
            start_new_session=True,  # its own process group: a kill takes its workers too
        )
        deadline = began + START_TIMEOUT
        while self.tg.state.primary.webhook is before:
            if self.proc.returncode is not None:
                raise RowFailed(f"the bot exited with {self.proc.returncode}: {_tail(self.log)}")
            if time.monotonic() > deadline:
                raise RowFailed(f"no setWebhook within {START_TIMEOUT:g} s: {_tail(self.log)}")
            try:
                await self.tg.wait_for(lambda: self.tg.state.primary.webhook is not before, 0.1)
            except TimeoutError:
                pass  # look at the process again
        return time.monotonic() - began

    async def kill(self) -> None:
        """SIGKILL the bot's process group (the bot and any worker processes) and reap it."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 15 s; the exit code (None: never started)."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code: int | None
        try:
            code = await asyncio.wait_for(self.proc.wait(), 15.0)
        except TimeoutError:
            await self.kill()
            code = self.proc.returncode
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a straggling worker, if any
        except (ProcessLookupError, PermissionError):
            pass
        if self._out is not None:
            self._out.close()
        return code


def answered(tg: FakeTelegram, updates: int) -> int:
    """How many of the load's messages (texts "1" … ``updates``) got a reply, ever."""
    texts = set()
    for r in tg.requests:
        if r.method == "sendMessage" and r.status == 200:
            text = str(r.params.get("text", ""))
            if text.isdigit() and 1 <= int(text) <= updates:
                texts.add(text)
    return len(texts)


async def _settle(tg: FakeTelegram) -> None:
    """Wait until FakeTelegram holds no undelivered update and the bot has been quiet (no
    request) for :data:`QUIET` s, at most :data:`SETTLE_MAX` s."""
    deadline = time.monotonic() + SETTLE_MAX
    while time.monotonic() < deadline:
        seen = len(tg.requests)

        def more(seen: int = seen) -> bool:
            return len(tg.requests) > seen

        try:
            await tg.wait_for(more, timeout=QUIET)
        except TimeoutError:
            if tg.pending_updates == 0:
                return


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ms = sorted(v * 1000 for v in values)

    def at(q: float) -> float:
        return round(ms[min(len(ms) - 1, round(q * (len(ms) - 1)))], 2)

    return {"p50": at(0.5), "p99": at(0.99), "max": round(ms[-1], 2)}


async def _crash_loop(
    bot: BotProcess, load: asyncio.Future[Any], kills: int, seconds: float
) -> list[dict[str, float]]:
    """SIGKILL the bot at ``seconds × k / (kills + 1)`` for k = 1…kills (or at once after the
    previous restart, if that took longer), restarting it each time, while ``load`` runs."""
    start, done = time.monotonic(), []
    for k in range(1, kills + 1):
        due = start + seconds * k / (kills + 1) - time.monotonic()
        # Pacing the kills by the clock is the point here, not a synchronisation.
        finished, _ = await asyncio.wait({load}, timeout=max(due, 0.0))
        if finished:
            break
        at = time.monotonic() - start
        await bot.kill()
        restart = await bot.start()
        done.append({"at_s": round(at, 2), "restart_s": round(restart, 2)})
    return done


async def run_part(
    row: HookRow, part: str, plan: LoadPlan, *, pin: bool, kills: int = 0
) -> dict[str, Any]:
    """Run ``row`` under ``plan`` for ``part`` and return its measures (``skipped``: why not)."""
    result: dict[str, Any] = {
        "row": row.key, "label": row.label, "framework": row.framework, "part": part,
        "pinned": pin and row.pinned, "rate": plan.rate, "note": "",
    }  # fmt: skip
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"webhook-{row.key}-{part}.log"
    log.unlink(missing_ok=True)
    timings = WebhookTimings()
    async with FakeTelegram(webhook_retry=RETRY, webhook_timings=timings) as tg:
        bot = BotProcess(row, tg, pin=pin, log=log)
        try:
            try:
                await bot.start()
                await _warm_up(tg)
            except (RowFailed, TimeoutError) as exc:
                return {**result, "skipped": str(exc) or f"no warm-up reply: {_tail(log)}"}
            assert bot.proc is not None
            gc.collect()
            gc.freeze()
            timings.ok.clear()
            timings.failed = 0
            cpu0 = tree_cpu(bot.proc.pid)
            own0, wall0 = time.process_time(), time.monotonic()
            load = asyncio.ensure_future(run_load(tg, plan))
            crashes: list[dict[str, float]] = []
            if kills:
                crashes = await _crash_loop(bot, load, kills, plan.updates / plan.rate)
            report = await load
            cpu1 = None if kills else tree_cpu(bot.proc.pid)
            wall, own = time.monotonic() - wall0, time.process_time() - own0
            rss = tree_rss_mb(bot.proc.pid)
            alive = bot.proc.returncode is None
            if report.lost:
                await _settle(tg)
            else:
                try:
                    await tg.wait_for(lambda: tg.pending_updates == 0, timeout=SETTLE)
                except TimeoutError:
                    pass
            pending = tg.pending_updates
            final = answered(tg, plan.updates) if report.lost else report.replied
        finally:
            code = await bot.stop()
    handled = max(report.replied, 1)
    result.update(report.as_dict())
    if cpu0 is not None and cpu1 is not None:
        result["cpu_us"] = round((cpu1.tree - cpu0.tree) / handled * 1e6, 1)
        result["cores_busy"] = round((cpu1.tree - cpu0.tree) / wall, 2)
    ack = _quantiles(timings.ok)
    result.update(
        rss_mb=rss,
        harness_cpu_share=round(own / wall, 2),
        acks=len(timings.ok),
        ack_failed=timings.failed,
        ack_p50_ms=ack["p50"],
        ack_p99_ms=ack["p99"],
        ack_max_ms=ack["max"],
        unacknowledged=pending,
        answered_late=final - report.replied,
        # What FakeTelegram got a 2xx for and the bot never answered, even given the time.
        acked_lost=max(plan.updates - final - pending, 0),
    )
    if kills:
        result["kills"] = crashes
    notes = []
    if own / wall >= 0.9:
        notes.append(f"FakeTelegram's core was {own / wall:.0%} busy")
    if report.lost:
        notes.append(
            f"{report.lost} unanswered after {plan.timeout:g} s, of which "
            f"{final - report.replied} answered later, before the bot went quiet"
        )
    if pending:
        notes.append(f"{pending} never acknowledged (still queued at FakeTelegram)")
    if not alive:
        notes.append(f"the bot died during the run: {_tail(log)}")
    elif code not in (0, -signal.SIGTERM, None):
        notes.append(f"exit code {code} after SIGTERM")
    result["note"] = "; ".join(notes)
    return result


def plans(args: argparse.Namespace) -> dict[str, LoadPlan]:
    """The load of each part (see the module's docstring)."""
    updates = args.updates or (2000 if args.quick else 10_000)
    chats = args.chats or (200 if args.quick else 1000)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    return {
        "throughput": LoadPlan(
            chats=chats, updates=updates, timeout=args.timeout or 30 + updates / 100
        ),
        "ack": LoadPlan(
            chats=chats,
            updates=max(1, round(args.rate * seconds)),
            rate=args.rate,
            timeout=args.timeout or seconds + 30,
        ),
        "crash": LoadPlan(
            chats=chats,
            updates=updates,
            rate=CRASH_RATE,
            timeout=args.timeout or updates / CRASH_RATE + 20,
        ),
    }


def describe(plan: LoadPlan, part: str, kills: int) -> str:
    offered = "all queued at once" if plan.rate <= 0 else f"offered at {plan.rate:,.0f}/s"
    text = (
        f"{plan.updates:,} messages over {plan.chats:,} chats ({plan.spread} spread), {offered}, "
        f"no API latency; a row that cannot keep up stops at {plan.timeout:g} s."
    )
    if part == "crash":
        text += f" The bot's process group SIGKILLed {kills} times and started again each time."
    return text


def _line(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"  skipped: {r['skipped']}"
    text = (
        f"  {r['throughput']:>8,.0f} updates/s  CPU {r.get('cpu_us') or 0:,.0f} µs/update  "
        f"p50 {r['p50_ms']:,.1f} p99 {r['p99_ms']:,.1f} ms  200 after p50 "
        f"{r['ack_p50_ms'] or 0:,.2f} p99 {r['ack_p99_ms'] or 0:,.2f} ms ({r['ack_failed']} "
        f"non-2xx)  violations {r['violations']}  lost {r['lost']}  duplicates {r['duplicates']}"
    )
    if "kills" in r:
        text += f"  kills {len(r['kills'])}, acked and lost {r['acked_lost']}"
    return text + (f"  ({r['note']})" if r["note"] else "")


async def _run_all(
    rows: list[HookRow], parts: dict[str, LoadPlan], pin: bool, kills: int
) -> list[dict[str, Any]]:
    results = []
    for part in PARTS:
        for row in rows:
            print(f"- [{part}] {row.label}", flush=True)
            try:
                result = await run_part(
                    row, part, parts[part], pin=pin, kills=kills if part == "crash" else 0
                )
            except Exception as exc:  # one broken row must not cost the others
                why = f"the harness failed: {type(exc).__name__}: {exc}"
                result = {"row": row.key, "label": row.label, "framework": row.framework,
                          "part": part, "note": "", "skipped": why}  # fmt: skip
            print(_line(result), flush=True)
            results.append(result)
    return results


def run(
    args: argparse.Namespace,
    argv: list[str],
    info: dict[str, str],
    *,
    pinned: bool,
    run_on: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run,
) -> int:
    """The webhook scenario, from the parsed ``python -m bench`` arguments; ``pinned``: the
    harness is on core 0; ``run_on`` runs the harness's coroutine (on asyncio or uvloop)."""
    rows = pick_rows(HOOK_ROWS, args.rows)
    if rows is None:
        return 2
    kills = args.kills if args.kills is not None else (3 if args.quick else 5)
    parts = plans(args)
    if pinned:
        info["pinning"] = (
            "FakeTelegram + load driver on core 0, the bot on core 1; the --workers 2 row's bot "
            "unpinned (every core, shared with the harness)"
        )
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    described = {p: describe(parts[p], p, kills) for p in PARTS}
    for part in PARTS:
        print(f"{part}: {described[part]}", flush=True)
    results = run_on(_run_all(rows, parts, pinned, kills))
    info["load average at end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(argv)
    webhook_report.write(args.out, results, info, described, command)
    print(f"\nwrote {args.out / 'webhook.md'}, webhook.png and webhook.json", flush=True)
    return 0
