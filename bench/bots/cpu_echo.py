"""The CPU-bound tgrunner native echo bot: each handler spins 1 ms of CPU, then replies.

``tgrunner run bench.bots.cpu_echo:router --workers N``.
"""

from __future__ import annotations

from bench.bots.spin import spin
from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    spin()
    await ctx.reply(ctx.text or "")
