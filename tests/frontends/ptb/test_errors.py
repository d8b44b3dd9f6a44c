"""Errors reach PTB's error handlers, else tgrunner's hook; the handler time limit cancels a PTB
handler."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram import Update
from telegram.ext import ApplicationBuilder, MessageHandler, filters

from frontends.ptb.helpers import (
    AnyApp,
    on_tgrunner,
)
from tgrunner.testing import FakeTelegram

# -- errors ------------------------------------------------------------------------------------


def failing_app(tg: FakeTelegram, *, block: bool = True) -> AnyApp:
    async def fail(update: Update, context: Any) -> None:
        raise ValueError(f"failed on {update.effective_message.text}")

    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    app.add_handler(MessageHandler(filters.TEXT, fail, block=block))
    return app


@pytest.mark.parametrize("block", [True, False], ids=["blocking", "block=False"])
@pytest.mark.timeout(30)
async def test_errors_reach_tgrunner_hook_when_ptb_has_no_error_handler(
    tg: FakeTelegram, block: bool
) -> None:
    seen: list[tuple[int, BaseException]] = []
    app = failing_app(tg, block=block)
    alice = tg.user("Alice")
    async with on_tgrunner(app, on_error=lambda u, e: seen.append((u["update_id"], e))) as runner:
        alice.send("one")
        alice.send("two")
        await tg.wait_for(lambda: runner.stats.finished == 2)
    assert [str(e) for _, e in seen] == ["failed on one", "failed on two"]
    assert all(isinstance(e, ValueError) for _, e in seen)
    assert not app.error_handlers, "tgrunner's fallback stayed registered"
    assert tg.pending_updates == 0


@pytest.mark.timeout(30)
async def test_ptb_error_handlers_come_first(tg: FakeTelegram) -> None:
    hook: list[BaseException] = []
    handled: list[BaseException] = []
    app = failing_app(tg)

    async def on_error(update: object, context: Any) -> None:
        handled.append(context.error)

    app.add_error_handler(on_error)
    alice = tg.user("Alice")
    async with on_tgrunner(app, on_error=lambda u, e: hook.append(e)) as runner:
        alice.send("one")
        await tg.wait_for(lambda: runner.stats.finished == 1)
    assert [str(e) for e in handled] == ["failed on one"]
    assert hook == []


@pytest.mark.timeout(30)
async def test_handler_time_limit_cancels_the_ptb_handler(tg: FakeTelegram) -> None:
    cancelled = asyncio.Event()

    async def stuck(update: Update, context: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    app.add_handler(MessageHandler(filters.TEXT, stuck))
    tg.user("Alice").send("hang")
    async with on_tgrunner(app, handler_timeout=0.2) as runner:
        await tg.wait_for(lambda: runner.stats.finished == 1, timeout=10)
    assert cancelled.is_set()
    assert runner.stats.timeouts == 1
    assert tg.pending_updates == 0
