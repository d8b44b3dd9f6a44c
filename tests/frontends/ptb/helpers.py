"""Shared by the PTB front-end tests: the sample bot, an application run on tgrunner or on
PTB's own polling, and what the bot wrote per chat. A plain module, not a conftest: a second
conftest would shadow the root one's ``need_service``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from telegram.ext import Application

from tgrunner.frontends.ptb import adapt
from tgrunner.keys import chat_and_user_keys
from tgrunner.runtime.runner import Runner
from tgrunner.settings import PollingOptions, SchedulerOptions, Settings
from tgrunner.testing import FakeTelegram

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[2] / "examples" / "ptb_bot.py"
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

AnyApp = Application[Any, Any, Any, Any, Any, Any]


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("ptb_bot_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


@contextlib.asynccontextmanager
async def on_tgrunner(
    app: AnyApp,
    *,
    on_error: Callable[[dict[str, Any], BaseException], Any] | None = None,
    concurrency: int = 500,
    handler_timeout: float | None = None,
    **options: Any,
) -> AsyncIterator[Runner]:
    """Run ``app`` on tgrunner as build_runner wires it, with an error hook; stop on exit."""
    fe = adapt(app, **options)
    assert fe.token is not None
    assert fe.api_url is not None
    settings = Settings(
        keys=fe.keys or chat_and_user_keys,
        polling=PollingOptions(timeout=1, allowed_updates=fe.allowed_updates),
        scheduler=SchedulerOptions(concurrency=concurrency, handler_timeout=handler_timeout),
    )
    runner = Runner(
        fe.handler,
        token=fe.token,
        api_url=fe.api_url,
        settings=settings,
        on_error=on_error,
        startup=fe.startup,
        shutdown=fe.shutdown,
    )
    task = asyncio.create_task(runner.serve(install_signals=False))
    try:
        yield runner
    finally:
        runner.stop()
        assert await asyncio.wait_for(task, 30) == 0


@contextlib.asynccontextmanager
async def on_ptb_polling(app: AnyApp) -> AsyncIterator[None]:
    """PTB's own runner, sequential: the Application with its Updater polling."""
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


def events(tg: FakeTelegram) -> dict[int, list[str]]:
    """Per chat, what the bot sent and edited there, in arrival order."""
    out: dict[int, list[str]] = {}
    for r in tg.requests:
        if r.method in ("sendMessage", "editMessageText") and r.ok:
            out.setdefault(int(r.params["chat_id"]), []).append(f"{r.method}: {r.params['text']}")
    return out


async def until_events(tg: FakeTelegram, chat_id: int, count: int, timeout: float = 15) -> None:
    await tg.wait_for(lambda: len(events(tg).get(chat_id, ())) >= count, timeout=timeout)
