"""``tgrunner run`` in a subprocess, for the process tests of every front-end (native, aiogram,
PTB): start it with extra CLI arguments, follow its log, signal it, and end what a failing
test left running.

A mode that changes the command line for every process test (journal or strict offsets, say)
goes in :data:`MODES`; tests parametrised over it pass ``*MODES[mode]`` to :func:`start_bot`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from tgrunner.testing import FakeTelegram

__all__ = [
    "MODES",
    "BotProcess",
    "adopt",
    "end_started_bots",
    "journaled",
    "start_bot",
    "start_python",
    "unfinished",
    "until",
]

MODES: dict[str, tuple[str, ...]] = {"journal": (), "strict": ("--no-journal",)}
"""Extra ``tgrunner run`` arguments by mode name: the journal (the default) or strict offsets."""

_started: list[BotProcess] = []


class BotProcess:
    """A running ``tgrunner run``; its stderr is read as it comes, so a chatty bot never
    blocks on a full pipe, and :meth:`wait_for_line` wakes on the line itself."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._more = asyncio.Condition()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            async with self._more:
                self.lines.append(line.decode(errors="replace"))
                self._more.notify_all()
        async with self._more:
            self._more.notify_all()

    @property
    def log(self) -> str:
        """What the process wrote to stderr so far."""
        return "".join(self.lines)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.kill()

    async def wait_for_line(
        self, text: str | re.Pattern[str], timeout: float = 10, *, after: int = 0
    ) -> str:
        """Wait until a stderr line (the ``after``-th or a later one) contains ``text`` (or
        matches it, a compiled pattern); return the log up to it."""

        def has(line: str) -> bool:
            return text in line if isinstance(text, str) else text.search(line) is not None

        def seen() -> bool:
            return any(has(line) for line in self.lines[after:]) or self._reader.done()

        async with asyncio.timeout(timeout), self._more:
            await self._more.wait_for(seen)
        assert any(has(line) for line in self.lines[after:]), (
            f"the process ended without saying {text!r}: {self.log}"
        )
        return self.log

    async def stop(self) -> str:
        """SIGTERM, then the whole stderr of a clean stop (exit 0, no traceback)."""
        self.send_signal(signal.SIGTERM)
        code, err = await self.finish()
        assert code == 0, err
        assert "Traceback" not in err
        return err

    async def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the exit; return the exit code and the whole stderr."""
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self._reader
        return code, self.log


async def start_bot(
    tg: FakeTelegram,
    target: str,
    *extra: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    webhook: bool = False,
    timeout: float = 30,
) -> BotProcess:
    """``tgrunner run TARGET --api-url … --token … *extra`` from ``cwd`` (where the bot's
    module is), with ``env`` added to this process's environment; returns once it polls, or
    with ``webhook``, once its webhook is set at FakeTelegram (within ``timeout`` seconds)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", target,
        "--api-url", tg.api_url, "--token", tg.token, *extra,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    bot = BotProcess(proc)
    _started.append(bot)
    if webhook:
        since = len(tg.calls("setWebhook"))
        await tg.wait_for(lambda: len(tg.calls("setWebhook")) > since, timeout=timeout)
    else:
        await tg.wait_until_polling(timeout=timeout)
    return bot


async def start_python(code: str, *, cwd: Path, env: Mapping[str, str] | None = None) -> BotProcess:
    """``python -c CODE`` from ``cwd``: a bot started through a front-end's own ``run()``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    bot = BotProcess(proc)
    _started.append(bot)
    return bot


def adopt(proc: asyncio.subprocess.Process) -> BotProcess:
    """Follow ``proc`` (its stderr a pipe) as a :class:`BotProcess`, which
    :func:`end_started_bots` ends if it still runs."""
    bot = BotProcess(proc)
    _started.append(bot)
    return bot


async def until(
    tg: FakeTelegram, bot: BotProcess, predicate: Callable[[], bool], timeout: float = 60
) -> None:
    """``tg.wait_for(predicate, timeout)``; when it times out, fail with the bot's log too."""
    try:
        await tg.wait_for(predicate, timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nthe bot's log:\n{bot.log}") from None


def journaled(tg: FakeTelegram) -> int:
    """Updates left unfinished in the bot's journal (in the test's ``TGRUNNER_DATA_DIR``)."""
    path = Path(os.environ["TGRUNNER_DATA_DIR"]) / tg.token.partition(":")[0] / "journal.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM intake").fetchone()[0])
    finally:
        db.close()


def unfinished(tg: FakeTelegram, mode: str) -> int:
    """Updates kept for the next start: in the journal, or (strict offsets) at Telegram."""
    return journaled(tg) if mode == "journal" else tg.pending_updates


async def end_started_bots() -> None:
    """Kill, by PID, every process started here that still runs (a failed test's leftovers)."""
    while _started:
        bot = _started.pop()
        if bot.proc.returncode is None:
            bot.proc.kill()
            await bot.proc.wait()
        if not bot._reader.done():
            await bot._reader
