"""A native bot counting in ``ctx.user_data`` and ``ctx.chat_data``, for the state process
tests: each message adds 1 to its sender's count and to its chat's, reading, then awaiting,
then writing inside the ``async with`` block (a read-await-write that would lose increments
without the transaction), and answers ``user N chat M``. ``/count`` answers ``count N``
(the sender's count) without a lock. With the default keys (the chat) a user's messages in
two chats run at once, in two worker processes."""

from __future__ import annotations

import asyncio
import random

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.command("count")
async def count(ctx: Context) -> None:
    data = await ctx.user_data.get()
    await ctx.reply(f"count {data.get('n', 0)}")


@router.message()
async def add(ctx: Context) -> None:
    async with ctx.user_data as data:
        seen = data.get("n", 0)
        await asyncio.sleep(random.uniform(0, 0.003))
        data["n"] = seen + 1
    async with ctx.chat_data as chat:
        chat["n"] = chat.get("n", 0) + 1
    await ctx.reply(f"user {data['n']} chat {chat['n']}")
