"""A native bot for the ``tgrunner chat`` tests: every answer names its sender, so a test sees
which simulated user spoke and where.

- ``/start``: "Hello, NAME!" with an inline keyboard (Yes, No, and a URL button).
- Yes / No: answers the callback ("Noted") and edits the question into "NAME chose Yes".
- ``/menu``: a one-time reply keyboard (Red, Blue); ``/hide`` removes it.
- ``/draft``: sends "draft", then edits it into "final".
- ``/gone``: sends "short-lived", then deletes it.
- ``/dm`` (in a group): answers "psst" in the sender's private chat instead.
- ``/fail``: sends to a chat that does not exist (the call fails).
- ``/later``: answers "later" after a second (while the person types).
- ``/slow``: answers "working" at once and "done" 30 s later (for the stop tests).
- a photo: "NAME sent a photo: CAPTION"; an edit: "NAME edited: TEXT".
- any other text: "NAME said: TEXT" (with " in TITLE" in a group).
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from tgrunner.errors import BadRequest
from tgrunner.frontends.native.router import Context, Router

router = Router()

_QUESTION = {
    "inline_keyboard": [
        [{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}],
        [{"text": "Docs", "url": "https://example.org/docs"}],
    ]
}


def _name(ctx: Context) -> str:
    return str((ctx.user or {}).get("first_name", "?"))


@router.command("start")
async def start(ctx: Context) -> None:
    await ctx.answer(f"Hello, {_name(ctx)}! Do you like it?", reply_markup=_QUESTION)


@router.callback(data=re.compile(r"^(yes|no)$"))
async def chose(ctx: Context) -> None:
    await ctx.answer_callback("Noted")
    message = ctx.message or {}
    await ctx.bot.edit_message_text(
        f"{_name(ctx)} chose {'Yes' if ctx.callback_data == 'yes' else 'No'}",
        chat_id=message["chat"]["id"],
        message_id=message["message_id"],
    )


@router.command("menu")
async def menu(ctx: Context) -> None:
    keyboard = {"keyboard": [[{"text": "Red"}, {"text": "Blue"}]], "one_time_keyboard": True}
    await ctx.answer("Pick a colour", reply_markup=keyboard)


@router.command("hide")
async def hide(ctx: Context) -> None:
    await ctx.answer("Keyboard hidden", reply_markup={"remove_keyboard": True})


@router.command("draft")
async def draft(ctx: Context) -> None:
    sent = await ctx.answer("draft")
    await ctx.bot.edit_message_text(
        "final", chat_id=sent["chat"]["id"], message_id=sent["message_id"]
    )


@router.command("gone")
async def gone(ctx: Context) -> None:
    sent = await ctx.answer("short-lived")
    await ctx.bot.delete_message(sent["chat"]["id"], sent["message_id"])


@router.command("dm")
async def dm(ctx: Context) -> None:
    await ctx.bot.send_message((ctx.user or {})["id"], "psst")


@router.command("fail")
async def fail(ctx: Context) -> None:
    with contextlib.suppress(BadRequest):
        await ctx.bot.send_message(-1, "nowhere")


@router.command("later")
async def later(ctx: Context) -> None:
    await asyncio.sleep(1.0)
    await ctx.answer("later")


@router.command("slow")
async def slow(ctx: Context) -> None:
    await ctx.answer("working")
    await asyncio.sleep(30)
    await ctx.answer("done")


@router.message(kinds=("edited_message",))
async def edited(ctx: Context) -> None:
    await ctx.answer(f"{_name(ctx)} edited: {ctx.text}")


@router.message(where=lambda ctx: "photo" in (ctx.message or {}))
async def photo(ctx: Context) -> None:
    await ctx.answer(f"{_name(ctx)} sent a photo: {ctx.text or '(no caption)'}")


@router.message()
async def said(ctx: Context) -> None:
    chat = (ctx.message or {}).get("chat") or {}
    where = f" in {chat['title']}" if chat.get("title") else ""
    await ctx.reply(f"{_name(ctx)} said{where}: {ctx.text}")
