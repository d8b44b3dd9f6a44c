"""A native echo bot with one poison message: "poison" kills its own process (SIGKILL), as a
segfaulting extension or an out-of-memory kill would."""

from __future__ import annotations

import os
import signal

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message(text="poison")
async def poison(ctx: Context) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "")
