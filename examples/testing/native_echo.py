"""A native tgrunner bot: /start greets, anything else comes back as it was sent."""

from tgrunner import Context, Router

router = Router()


@router.command("start")
async def start(ctx: Context) -> None:
    await ctx.reply("Hello! Send me anything.")


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "…")
