"""The flood benchmark's broadcast bot: ``tgrunner run bench.bots.flood_broadcast:router``.

A message ``/broadcast`` in :data:`CONTROL_CHAT` starts
``bot.broadcast(chat_ids, text=TEXT)`` to the chats ``BENCH_BROADCAST_CHATS`` names
(``FIRST:COUNT``: the ids FIRST … FIRST + COUNT - 1) and answers ``started <id>``. The
broadcast's outbox is in the bot's data dir: after a SIGKILL, the next start of the bot on the
same data dir resumes it by itself (tgrunner's broadcast contract), so the control message is
sent once.
"""

from __future__ import annotations

import os

from tgrunner.frontends.native.router import Context, Router

CONTROL_CHAT = 8_000_000
TEXT = "bench broadcast"

router = Router()


def chat_ids() -> list[int]:
    """The broadcast's chats, from ``BENCH_BROADCAST_CHATS`` (``FIRST:COUNT``)."""
    first, count = (int(x) for x in os.environ["BENCH_BROADCAST_CHATS"].split(":"))
    return list(range(first, first + count))


@router.message()
async def control(ctx: Context) -> None:
    if ctx.chat_id != CONTROL_CHAT or ctx.text != "/broadcast":
        return
    handle = await ctx.bot.broadcast(chat_ids(), text=TEXT)
    await ctx.answer(f"started {handle.id}")
