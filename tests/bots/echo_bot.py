"""A native echo bot for process-level tests: replies with the text, after a short random pause
so that several updates are in flight at once."""

from __future__ import annotations

import asyncio
import random

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    await asyncio.sleep(random.uniform(0.0, 0.02))
    await ctx.reply(ctx.text or "")
