"""The bot ``tgrunner demo`` runs: it echoes every message as a reply to it."""

from __future__ import annotations

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "")
