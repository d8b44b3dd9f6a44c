"""A native bot whose handler never finishes and swallows every cancellation: for testing the
stop budget and the third signal, which must end the process anyway."""

from __future__ import annotations

import asyncio

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def stubborn(ctx: Context) -> None:
    await ctx.answer("started")
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass  # ignored, on purpose
