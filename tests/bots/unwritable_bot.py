"""A native bot that, on its first message, stops its own process from growing any file (the
journal's included) past its current size, as a full disk would: the journal's next write
fails. It answers "filled" once the limit is in force."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def fill(ctx: Context) -> None:
    wal = Path(os.environ["TGRUNNER_DATA_DIR"]) / str(ctx.bot.id) / "journal.sqlite3-wal"
    # Writing past the limit raises SIGXFSZ, which would kill the process: the write must fail
    # with an error instead, as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size + 100, hard))
    await ctx.answer("filled")
