"""What the job worker tests share: :class:`Jobs` (an embedded queue in a temp folder, open
in this process, its worker's source, a Bot on FakeTelegram) and :class:`LogWatch`."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.jobs.backends.sqlite import SQLiteQueue, SQLiteSource
from tgrunner.jobs.store import JobStore
from tgrunner.jobs.worker import JobWorker
from tgrunner.testing import FakeTelegram


@dataclass
class Jobs:
    """The test's queue (``queue``, ``store``: the bot's side), its worker's ``source``, a
    ``bot`` on FakeTelegram ``tg``, and the file's ``path``."""

    tg: FakeTelegram
    path: Path
    queue: SQLiteQueue
    source: SQLiteSource
    bot: Bot

    @property
    def store(self) -> JobStore:
        return self.queue.store

    def worker(self, **options: Any) -> JobWorker:
        """A worker on the test's source (burst by default, short leases)."""
        options.setdefault("burst", True)
        options.setdefault("lease", 2.0)
        options.setdefault("renew_every", 0.5)
        return JobWorker(self.source, self.bot, **options)

    async def drain(self, **options: Any) -> JobWorker:
        """Run a burst worker until the queue is drained; return it (exit code 0 checked)."""
        worker = self.worker(**options)
        async with asyncio.timeout(30):
            code = await worker.serve()
        assert code == 0, worker.stats
        return worker

    def sent(self, method: str, message_id: int | None = None) -> list[dict[str, Any]]:
        """Parameters of the answered calls of ``method``; with ``message_id``, only those
        replying to that message."""
        found = [r.params for r in self.tg.calls(method) if r.ok]
        if message_id is None:
            return found
        return [p for p in found if (p.get("reply_parameters") or {}).get("message_id")
                == message_id]  # fmt: skip


class LogWatch(logging.Handler):
    """Sets an event when a log record matches; for tests that wait on a warning."""

    def __init__(self, pattern: str) -> None:
        super().__init__(logging.DEBUG)
        self.pattern = re.compile(pattern)
        self.seen = threading.Event()
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if self.pattern.search(text):
            self.records.append(text)
            self.seen.set()

    async def wait(self, timeout: float = 10.0) -> None:
        assert await asyncio.to_thread(self.seen.wait, timeout), f"no log line {self.pattern}"
