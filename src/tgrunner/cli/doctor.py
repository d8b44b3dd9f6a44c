"""``tgrunner doctor``: can this host run the bot? One line per check, with ✓ or ✗.

The checks, in order:

- ``token``: ``getMe`` answers with the bot (its @username and id); a 401 means the token is
  wrong or revoked.
- ``latency``: the p50 and p99 of 10 ``getMe`` exchanges, each sent as it is (never the cached
  :meth:`Bot.get_me`); above 50 ms at p50 is a warning, not a failure.
- ``webhook``: ``getWebhookInfo``; a webhook that is set (polling would get 409 Conflict) or a
  last delivery error is a warning.
- ``clock``: the host's clock against the ``Date`` headers of those 10 answers; more than
  2 s apart is a warning.
- ``data dir``: a probe file is written and removed in the bot's data dir (``--data-dir``,
  ``TGRUNNER_DATA_DIR``, default ``./.tgrunner``); folders it had to create are removed too.

Without an answer to ``getMe`` the next three are skipped. The exit code is 0 when no check
failed (warnings allowed), 1 when one did; a usage error (no token, a bad option) is one line
and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import orjson

from tgrunner.cli.connect import ENVIRONMENT, add_bot_options, bot_from, failure
from tgrunner.cli.webhook import ago
from tgrunner.client.bot import Bot
from tgrunner.client.transports.errors import TransportError
from tgrunner.errors import TgrunnerError
from tgrunner.intake.options import DEFAULT_DATA_DIR

__all__ = ["Check", "add_parser", "check_data_dir", "clock_offset", "diagnose"]

SAMPLES = 10
"""``getMe`` exchanges timed by the latency check."""
GOOD_LATENCY_MS = 50.0
"""A p50 above this is a warning: a good host answers within 50 ms."""
MAX_SKEW_S = 2.0
"""A clock further than this from the Bot API server's is a warning."""
LOW_SPACE = 100 * 1024 * 1024
"""Free bytes in the data dir below which its check warns."""

DESCRIPTION = """\
Check, from this host, what a bot needs, one line each:

  token      getMe answers: the bot's @username and id (a wrong token is a 401)
  latency    p50 and p99 of 10 getMe calls; a good host answers within 50 ms
  webhook    whether a webhook is set (polling fails with 409 while it is), the updates
             waiting at Telegram, the last delivery error
  clock      this host's clock against the Date header of Telegram's answers (2 s at most)
  data dir   the bots' data dir can be written (a probe file, written and removed)

The exit code is 0 when every check passes (warnings, marked '!', allowed) and 1 when one
fails. Without an answer to getMe, the latency, webhook and clock checks are skipped.
"""

EPILOG = f"""\
{ENVIRONMENT}  TGRUNNER_DATA_DIR           the data dir, when --data-dir is not given (default
                              ./.tgrunner)

examples:
  BOT_TOKEN=123456:ABC... tgrunner doctor
  tgrunner doctor --data-dir /srv/bots
  tgrunner doctor --json | jq '.checks[] | select(.status != "ok")'
"""

_MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
_ASCII = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


@dataclass(slots=True)
class Check:
    """One check's outcome: ``status`` is ``ok``, ``warn``, ``fail`` or ``skip``; ``text``
    the line after its name; ``data`` what ``--json`` adds (default none)."""

    name: str
    status: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.text, **self.data}


@dataclass(frozen=True, slots=True)
class _Sample:
    """One timed getMe exchange: round trip (s), wall-clock send and receive times, and the
    server's ``Date`` (Unix seconds), if it sent one."""

    rtt: float
    sent: float
    received: float
    date: float | None


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``doctor`` command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "doctor",
        help="check the token, Bot API latency, webhook, clock and data dir from this host",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the bots' data dir to check (default $TGRUNNER_DATA_DIR, else ./.tgrunner)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the results as one JSON object instead of lines (default: lines)",
    )
    add_bot_options(p)
    p.set_defaults(func=_cmd_doctor)
    return p


def _percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (p99 of 10 samples is the largest)."""
    return sorted_values[max(math.ceil(p / 100 * len(sorted_values)) - 1, 0)]


def clock_offset(samples: list[tuple[float, float, float]]) -> float | None:
    """How far the server's clock is ahead of this host's (seconds; negative: behind), from
    (sent, received, server Date) triples: the offset nearest 0 that every sample allows.

    A ``Date`` has whole seconds: the server's time was in [date, date + 1) while the
    request was between ``sent`` and ``received``, so each sample bounds the offset to
    [date - received, date + 1 - sent]. None without samples.
    """
    if not samples:
        return None
    low = max(date - received for sent, received, date in samples)
    high = min(date + 1 - sent for sent, received, date in samples)
    if low > high:  # the samples disagree (a clock step meanwhile): the middle
        return (low + high) / 2
    return min(max(0.0, low), high)


async def _token(bot: Bot) -> Check:
    try:
        me = await bot.call("getMe")
    except TgrunnerError as exc:
        return Check("token", "fail", failure(exc))
    name = f"@{me.get('username')}" if me.get("username") else repr(me.get("first_name"))
    data = {"id": me.get("id"), "username": me.get("username"), "api_url": bot.api_url}
    return Check("token", "ok", f"{name} (id {me.get('id')}), at {bot.api_url}", data)


async def _samples(bot: Bot) -> list[_Sample] | Check:
    """10 getMe exchanges sent through the transport itself, one after the other: the same
    keep-alive connection a running bot uses, and each answer's headers."""
    path = f"/bot{bot.token}/getMe"
    samples = []
    for n in range(1, SAMPLES + 1):
        sent, start = time.time(), time.perf_counter()
        try:
            resp = await bot.transport.request(
                "POST", path, b"", content_type="application/json", timeout=bot.timeout
            )
        except (TransportError, OSError) as exc:
            return Check("latency", "fail", f"getMe call {n} of {SAMPLES} got no answer: {exc}")
        rtt, received = time.perf_counter() - start, time.time()
        if resp.status != 200:
            return Check("latency", "fail", f"getMe call {n} of {SAMPLES} answered {resp.status}")
        samples.append(_Sample(rtt, sent, received, _date(resp.headers.get("date"))))
    return samples


def _date(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


def _latency(samples: list[_Sample]) -> Check:
    ms = sorted(s.rtt * 1000 for s in samples)
    p50, p99 = _percentile(ms, 50), _percentile(ms, 99)
    data = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "samples": len(ms)}
    text = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(ms)} getMe calls"
    if p50 > GOOD_LATENCY_MS:
        return Check(
            "latency",
            "warn",
            f"{text}: slow; a good host answers within {GOOD_LATENCY_MS:.0f} ms (Telegram's "
            "servers are in one region: a host near them makes every API call faster)",
            data,
        )
    return Check("latency", "ok", f"{text} (a good host: within {GOOD_LATENCY_MS:.0f} ms)", data)


async def _webhook(bot: Bot) -> Check:
    try:
        info = await bot.call("getWebhookInfo")
    except TgrunnerError as exc:
        return Check("webhook", "fail", failure(exc))
    pending = int(info.get("pending_update_count") or 0)
    url = info.get("url") or ""
    parts = [
        f"set to {url}" if url else "none, the bot can poll",
        f"{pending} pending update{'' if pending == 1 else 's'}",
    ]
    if info.get("last_error_message"):
        when = info.get("last_error_date")
        since = f" {ago(time.time() - when)} ago" if when else ""
        parts.append(f"last delivery error{since}: {info['last_error_message']}")
    if url:
        parts.append(
            "right for a bot run with --webhook-url; polling fails with 409 Conflict while it "
            "is set: to poll, remove it with 'tgrunner delete-webhook'"
        )
    status = "warn" if url or info.get("last_error_message") else "ok"
    return Check("webhook", status, "; ".join(parts), {"info": info})


def _clock(samples: list[_Sample]) -> Check:
    dated = [(s.sent, s.received, s.date) for s in samples if s.date is not None]
    offset = clock_offset(dated)
    if offset is None:
        return Check("clock", "warn", "the server's answers have no Date header to compare with")
    data = {"offset_s": round(offset, 3)}
    if abs(offset) <= MAX_SKEW_S:
        return Check(
            "clock", "ok", f"within {max(abs(offset), 1):.0f} s of the Bot API server's", data
        )
    way = "behind" if offset > 0 else "ahead of"
    return Check(
        "clock",
        "warn",
        f"this host's clock is {abs(offset):.1f} s {way} the Bot API server's (more than "
        f"{MAX_SKEW_S:.0f} s): sync it with NTP (timedatectl set-ntp true), or message dates "
        "and logged times disagree",
        data,
    )


def check_data_dir(root: Path, bot_id: int) -> Check:
    """Write and remove a probe file in the bot's folder of ``root`` (or in ``root`` while
    the bot has none); the folders it had to create are removed afterwards."""
    target = root / str(bot_id) if (root / str(bot_id)).is_dir() else root
    missing: list[Path] = []
    step = target
    while not step.exists() and step != step.parent:
        missing.append(step)
        step = step.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        probe = target / f".tgrunner-doctor-{os.getpid()}.probe"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink()
        free = shutil.disk_usage(target).free
    except OSError as exc:
        where = "" if exc.filename in (None, str(target)) else f"{exc.filename}: "
        return Check(
            "data dir",
            "fail",
            f"cannot write in {target.absolute()} ({where}{exc.strerror}); fix its "
            "permissions, or pass another --data-dir (or set TGRUNNER_DATA_DIR)",
            {"path": str(target.absolute())},
        )
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
    data = {"path": str(target.absolute()), "free_bytes": free}
    text = f"{target.absolute()} is writable, {free / 1e9:.1f} GB free"
    if missing:
        text += " (it does not exist yet; 'tgrunner run' creates it)"
    if free < LOW_SPACE:
        return Check("data dir", "warn", f"{text}: low on space for the journal", data)
    return Check("data dir", "ok", text, data)


async def diagnose(
    bot: Bot, data_dir: Path, report: Callable[[Check], None] = lambda check: None
) -> list[Check]:
    """Run every check, calling ``report`` with each as it ends; returns them in order."""
    checks: list[Check] = []

    def done(check: Check) -> None:
        checks.append(check)
        report(check)

    done(await _token(bot))
    if checks[0].status == "ok":
        samples = await _samples(bot)
        done(_latency(samples) if isinstance(samples, list) else samples)
        done(await _webhook(bot))
        if isinstance(samples, list):
            done(_clock(samples))
        else:
            done(Check("clock", "skip", "skipped: the latency calls got no answer"))
    else:
        for name in ("latency", "webhook", "clock"):
            done(Check(name, "skip", "skipped: the Bot API did not answer getMe"))
    done(await asyncio.to_thread(check_data_dir, data_dir, bot.id))
    return checks


def _marks() -> dict[str, str]:
    """✓ and ✗, or words when stdout cannot encode them."""
    try:
        "".join(_MARKS.values()).encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return _ASCII
    return _MARKS


def _cmd_doctor(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir or os.environ.get("TGRUNNER_DATA_DIR") or DEFAULT_DATA_DIR)
    marks = _marks()

    def show(check: Check) -> None:
        if not args.json:
            print(f"{marks[check.status]} {check.name}: {check.text}", flush=True)

    async def main() -> list[Check]:
        async with bot_from(args) as bot:
            return await diagnose(bot, data_dir, show)

    checks = asyncio.run(main())
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        result = {"ok": not failed, "checks": [c.as_json() for c in checks]}
        print(orjson.dumps(result).decode())
    return 1 if failed else 0
