"""The flood benchmark's tgrunner echo bots (``bench.flood``).

- ``tgrunner run bench.bots.flood_echo:echo3``: answers every message with three messages,
  ``"<text>/1"``, ``"<text>/2"`` and ``"<text>/3"``, one after another (the echo-3 part);
- ``tgrunner run bench.bots.flood_echo:echo1``: answers with the text alone (the 429 storm).

Plain ``sendMessage`` calls into the message's chat, no reply parameters: what the flood
limits count, and nothing else. A call that fails (a 429 with ``--flood off``) fails the
handler, and the messages after it in that handler are never sent.
"""

from __future__ import annotations

from tgrunner.frontends.native.router import Context, Router

REPLIES = 3
"""Messages ``echo3`` sends per message it gets."""

echo3 = Router()
echo1 = Router()


@echo3.message()
async def three(ctx: Context) -> None:
    text = ctx.text or ""
    for k in range(1, REPLIES + 1):
        await ctx.answer(f"{text}/{k}")


@echo1.message()
async def one(ctx: Context) -> None:
    await ctx.answer(ctx.text or "")
