"""A native bot with a job: each message queues ``render`` with the message as its reply
target and answers "⏳ Processing…" at once; a job worker replies ``done: TEXT``.

``slow N``: the job shows the progress ``working`` (a status message, the sign that it has
started), then takes N ms; its result then edits that status message into ``done: slow N``.
"""

from __future__ import annotations

import asyncio

from tgrunner.frontends.native.router import Context, Router
from tgrunner.jobs import JobContext, task

router = Router()


@task(retries=1)
async def render(text: str, ctx: JobContext) -> str:
    if text.startswith("slow "):
        await ctx.progress("working")
        await asyncio.sleep(int(text.split()[1]) / 1000)
    return f"done: {text}"


@router.message()
async def handle(ctx: Context) -> None:
    await render.enqueue(ctx.text or "", reply_to=ctx.message)
    await ctx.reply("⏳ Processing…")
