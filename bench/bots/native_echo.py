"""The tgrunner native echo bot: ``tgrunner run bench.bots.native_echo:router``."""

from __future__ import annotations

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "")
