"""The bank of ``examples/bank_bot.py`` written naively, to show the race its transaction
prevents: ``/transfer`` reads both balances, awaits a Bot API call, then writes both, with
nothing held in between and the default keys (the chat). Concurrent transfers that share an
account then overwrite each other, and money is lost or created."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

from bank_bot import Refused, account, open_account, parse, receiver

from tgrunner.frontends.native import CallNext, Context, Router

router = Router()


@router.use
async def accounts(ctx: Context, call_next: CallNext) -> None:
    if ctx.user is not None:
        await open_account(ctx.store, ctx.user)
    try:
        await call_next()
    except Refused as exc:
        await ctx.reply(str(exc))


@router.command("start", "balance")
async def balance(ctx: Context) -> None:
    assert ctx.user is not None
    await ctx.reply(f"You have {await ctx.store.get(account(ctx.user['id']), 0)} coins.")


@router.command("transfer")
async def send(ctx: Context) -> None:
    assert ctx.user is not None and ctx.chat_id is not None
    amount, name = parse(ctx)
    src, dst = account(ctx.user["id"]), account(await receiver(ctx.store, name, ctx.user["id"]))
    have, other = await ctx.store.get(src, 0), await ctx.store.get(dst, 0)
    if have < amount:
        raise Refused(f"You have {have}, not {amount}.")
    await ctx.bot.send_chat_action(ctx.chat_id, "typing")  # the await between read and write
    await ctx.store.set(src, have - amount)
    await ctx.store.set(dst, other + amount)
    await ctx.reply(f"Sent {amount} to @{name}. You have {have - amount}.")
