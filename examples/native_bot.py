"""A realistic native tgrunner bot: commands, an inline keyboard, a multi-step flow, a handler
that raises and a slow one.

Run it against FakeTelegram::

    tgrunner chat examples.native_bot:router      # talk to it in the terminal, offline

or against a FakeTelegram served on a port::

    tgrunner fake-telegram --port 8081            # prints the API URL and a token
    export BOT_TOKEN=<the token>
    tgrunner run examples.native_bot:router --api-url http://127.0.0.1:8081
"""

from __future__ import annotations

import asyncio
import re

from tgrunner.frontends.native.router import Context, Router

router = Router()

# Per-chat step of the /order flow. Safe without a lock: tgrunner runs one update per chat at a
# time, in order.
_orders: dict[int, dict[str, str]] = {}

MENU = {
    "inline_keyboard": [
        [{"text": "Coffee", "callback_data": "pick:coffee"}],
        [{"text": "Tea", "callback_data": "pick:tea"}],
    ]
}


@router.command("start")
async def start(ctx: Context) -> None:
    await ctx.reply("Welcome! Try /order, /menu, /slow or /boom.")


@router.command("menu")
async def menu(ctx: Context) -> None:
    await ctx.answer("What would you like?", reply_markup=MENU)


@router.callback(data=re.compile(r"^pick:(\w+)$"))
async def picked(ctx: Context) -> None:
    assert ctx.match is not None
    await ctx.answer_callback(f"You picked {ctx.match[1]}")
    await ctx.answer(f"One {ctx.match[1]} coming up.")


@router.command("order")
async def order(ctx: Context) -> None:
    _orders[ctx.chat_id or 0] = {"step": "size"}
    await ctx.reply("Which size? (small/large)")


@router.command("slow")
async def slow(ctx: Context) -> None:
    await asyncio.sleep(2)
    await ctx.reply("That took a while.")


@router.command("boom")
async def boom(ctx: Context) -> None:
    raise RuntimeError("this handler fails on purpose; the bot keeps running")


@router.message()
async def text(ctx: Context) -> None:
    state = _orders.get(ctx.chat_id or 0)
    if state is None:
        await ctx.reply(ctx.text or "…")
        return
    if state["step"] == "size":
        state.update(step="name", size=ctx.text or "")
        await ctx.reply("Name for the order?")
    else:
        del _orders[ctx.chat_id or 0]
        await ctx.reply(f"Order: {state['size']} for {ctx.text}.")
