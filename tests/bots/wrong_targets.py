"""Targets that cannot be a bot, for the refusal tests: each is refused before anything is
fetched, with exit code 2 and a hint (see tests/runtime/test_targets*.py)."""

from __future__ import annotations

from typing import Any

from tgrunner.frontends.native.context import Context
from tgrunner.frontends.native.router import Router

router = Router()
bot = None  # a placeholder, set by code that never runs


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "")


async def untyped_echo(ctx):  # type: ignore[no-untyped-def]
    await ctx.reply(ctx.text or "")


async def start(update: Any, context: Any) -> None:
    """A python-telegram-bot handler."""


async def on_message(message: Any) -> None:
    """An aiogram handler, by its parameter's name."""


async def three(update: Any, bot: Any, extra: Any) -> None:
    """Takes one argument too many."""


def sync_handler(update: Any, bot: Any) -> None:
    """(update, bot), but not async."""


class MyBot:
    """A class, not an instance."""


def returns_nothing() -> None:
    """A zero-argument function that neither starts nor returns a bot."""


def returns_router() -> Router:
    """A factory (returns the Router without starting it)."""
    return router


async def returns_router_async() -> Router:
    return router


def explodes() -> None:
    raise RuntimeError("the factory failed")
