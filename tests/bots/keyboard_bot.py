"""A native bot with an inline keyboard, for the control API's tests.

``/start`` sends a menu with two callback buttons, a silent one and a URL button. Pressing
"Yes" or "No" edits the menu to say what was picked and answers the callback; "Later" is
never answered. A photo is answered with its size; other text is echoed.
"""

from __future__ import annotations

from tgrunner.frontends.native.router import Context, Router

router = Router()

MENU = {
    "inline_keyboard": [
        [{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}],
        [{"text": "Later", "callback_data": "later"}],
        [{"text": "Docs", "url": "https://example.org/docs"}],
    ]
}


@router.command("start")
async def start(ctx: Context) -> None:
    name = (ctx.user or {}).get("first_name", "there")
    await ctx.answer(f"Hello, {name}! Pick one:", reply_markup=MENU)


@router.callback(data="later")
async def later(ctx: Context) -> None:
    """Left unanswered on purpose: the client's spinner would keep turning."""


@router.callback()
async def picked(ctx: Context) -> None:
    message = ctx.message or {}
    await ctx.bot.edit_message_text(
        f"You picked {ctx.callback_data}.",
        chat_id=ctx.chat_id,
        message_id=message.get("message_id"),
    )
    await ctx.answer_callback(f"Noted: {ctx.callback_data}")


@router.message(where=lambda ctx: "photo" in (ctx.message or {}))
async def photo(ctx: Context) -> None:
    largest = (ctx.message or {})["photo"][-1]
    await ctx.reply(f"A photo of {largest['width']}x{largest['height']}")


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "")
