"""A native bot for the flood control's process tests: answers each message with five, one
after another, more than Telegram lets into one chat at once."""

from __future__ import annotations

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message()
async def five(ctx: Context) -> None:
    for n in range(1, 6):
        await ctx.reply(f"{ctx.text} {n}")
