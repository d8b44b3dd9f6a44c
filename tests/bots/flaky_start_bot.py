"""A native echo bot that cannot start while ``$WORKER_BOT_DIR/broken`` exists (new code with
a bug, a database gone): a process that started before keeps working."""

from __future__ import annotations

import os
from pathlib import Path

from tgrunner.frontends.native.router import Context, Router

if (Path(os.environ["WORKER_BOT_DIR"]) / "broken").exists():
    raise RuntimeError("the new code is broken")

router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(f"{ctx.text} from {os.getpid()}")
