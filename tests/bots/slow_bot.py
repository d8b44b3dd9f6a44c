"""A native bot whose handlers take 30 s: for testing the grace period and a second signal."""

from __future__ import annotations

import asyncio

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def slow(ctx: Context) -> None:
    await ctx.answer("started")
    await asyncio.sleep(30)
    await ctx.reply("finished")
