"""Job worker processes for the process tests: ``python -m tgrunner.jobs.process`` on a test's
queue file and FakeTelegram, started, signalled and ended by PID."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from processes import BotProcess
from tgrunner.testing import FakeTelegram

HERE = Path(__file__).resolve().parent

_started: list[BotProcess] = []


async def start_worker(tg: FakeTelegram, path: Path, *extra: str, ready: bool = True) -> BotProcess:
    """A job worker process on the queue file ``path`` (its tasks from this folder), with
    ``extra`` arguments; with ``ready``, returned once it says it takes jobs."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner.jobs.process", "--jobs", f"sqlite:///{path}",
        "--api-url", tg.api_url, "--path", str(HERE), "--log-level", "INFO", *extra,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TGRUNNER_TOKEN": tg.token},
    )  # fmt: skip
    worker = BotProcess(proc)
    _started.append(worker)
    if ready:
        await worker.wait_for_line("ready:", timeout=30)
    return worker


async def end_workers() -> None:
    """SIGKILL, by PID, every worker started here that still runs."""
    while _started:
        worker = _started.pop()
        if worker.proc.returncode is None:
            worker.proc.kill()
            await worker.proc.wait()
        await worker.finish()
