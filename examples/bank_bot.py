"""A bank bot that stays correct under concurrency: ``/balance`` and ``/transfer AMOUNT @user``.

Every user who writes to the bot gets an account with 100 coins, and the bot remembers their
@username so that others can send them coins. Run it with every core, against FakeTelegram::

    tgrunner fake-telegram --port 8081            # prints the API URL and a token
    export BOT_TOKEN=<the token>
    tgrunner run examples.bank_bot:router --api-url http://127.0.0.1:8081 --workers 2 \\
        --state sqlite:///bank.db                 # or postgresql://, mysql://, redis://

Two things keep the money right, whatever runs at the same time:

- **A transaction** on the two accounts (:func:`transfer`): both are locked (in one order, so
  two transfers never deadlock), read, checked and written at once, across worker processes
  and machines. Two transfers that read the same balance, await and write would otherwise
  lose or create money (``tests/bots/bank_naive.py`` does that, to show it).
- **Ordering keys** (:func:`bank_keys`): a transfer is ordered by its chat and by the two
  accounts' names, so transfers touching the same account run one at a time, in the order
  they were sent, and do not queue on each other's locks.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from tgrunner.frontends.native import CallNext, Context, Router
from tgrunner.keys import default_keys
from tgrunner.state import Store

START = 100
"""The coins of a new account."""

TRANSFER = re.compile(r"^/transfer(?:@\w+)?\s+(?P<amount>\S+)\s+@(?P<name>\w+)\s*$")


class Refused(Exception):
    """A transfer that cannot be made; the message says why, to the user."""


def account(user_id: int) -> str:
    """The store key of a user's balance."""
    return f"bank:account:{user_id}"


def name_key(username: str) -> str:
    """The store key that maps an @username to its user id."""
    return f"bank:name:{username.lower()}"


def bank_keys(update: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """The update's chat, and for ``/transfer AMOUNT @user`` the sender's and the receiver's
    names: transfers that touch one account are handled one at a time, in order."""
    keys = default_keys(update)
    message = update.get("message") or {}
    sender = (message.get("from") or {}).get("username")
    found = TRANSFER.match(message.get("text") or "")
    if found is None or not sender:
        return keys
    return (*keys, f"name:{sender.lower()}", f"name:{found['name'].lower()}")


router = Router(keys=bank_keys)


async def open_account(store: Store, user: Mapping[str, Any]) -> None:
    """Give a user seen for the first time an account of :data:`START` coins, and remember
    their @username (one read each when nothing changed)."""
    key = account(user["id"])
    if await store.get(key) is None:
        async with store.transaction(key) as tx:
            if await tx.get(key) is None:  # another update of theirs may have opened it
                tx.set(key, START)
    username = user.get("username")
    if username and await store.get(name_key(username)) != user["id"]:
        await store.set(name_key(username), user["id"])


async def transfer(
    store: Store,
    src: int,
    dst: int,
    amount: int,
    meanwhile: Callable[[], Awaitable[object]] | None = None,
) -> int:
    """Move ``amount`` coins from ``src``'s account to ``dst``'s, atomically; the sender's new
    balance. ``meanwhile()`` is awaited between the read and the write (a Bot API call, a
    fraud check): the accounts stay locked while it runs. Refused when ``src`` has too little.
    """
    a, b = account(src), account(dst)
    async with store.transaction(a, b) as tx:
        have = await tx.get(a, 0)
        if have < amount:
            raise Refused(f"You have {have}, not {amount}.")
        if meanwhile is not None:
            await meanwhile()
        tx.set(a, have - amount)
        tx.set(b, await tx.get(b, 0) + amount)
    return have - amount


def parse(ctx: Context) -> tuple[int, str]:
    """The amount and the receiver's name of a ``/transfer``; Refused when they are wrong."""
    found = TRANSFER.match(ctx.text or "")
    if found is None:
        raise Refused("Usage: /transfer AMOUNT @user")
    if not found["amount"].isdigit() or int(found["amount"]) < 1:
        raise Refused(f"{found['amount']!r} is not a whole number of coins above 0.")
    return int(found["amount"]), found["name"]


async def receiver(store: Store, name: str, sender: int) -> int:
    """The user id of @name; Refused when unknown or the sender themselves."""
    dst = await store.get(name_key(name))
    if dst is None:
        raise Refused(f"I do not know @{name}: they must write to me first.")
    if dst == sender:
        raise Refused("That is you.")
    return int(dst)


@router.use
async def accounts(ctx: Context, call_next: CallNext) -> None:
    """Every user who writes gets an account; refusals are answered, not raised."""
    if ctx.user is not None:
        await open_account(ctx.store, ctx.user)
    try:
        await call_next()
    except Refused as exc:
        await ctx.reply(str(exc))


@router.command("start", "balance")
async def balance(ctx: Context) -> None:
    assert ctx.user is not None
    have = await ctx.store.get(account(ctx.user["id"]), 0)
    await ctx.reply(f"You have {have} coins. Send some with /transfer AMOUNT @user.")


@router.command("transfer")
async def send(ctx: Context) -> None:
    assert ctx.user is not None and ctx.chat_id is not None
    amount, name = parse(ctx)
    dst = await receiver(ctx.store, name, ctx.user["id"])
    chat_id = ctx.chat_id
    left = await transfer(
        ctx.store, ctx.user["id"], dst, amount,
        meanwhile=lambda: ctx.bot.send_chat_action(chat_id, "typing"),
    )  # fmt: skip
    await ctx.reply(f"Sent {amount} to @{name}. You have {left}.")
