"""The sample bot (``examples/ptb_bot.py``) on tgrunner gets, in every chat, the replies it gets
under PTB's own polling run sequentially."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from frontends.ptb.helpers import (
    events,
    example,
    on_ptb_polling,
    until_events,
)
from tgrunner.runtime.build import build_runner
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram

# -- the sample bot: same replies as under PTB's own runner ----------------------------------


async def script(tg: FakeTelegram, user: Any, index: int) -> None:
    """One user's session with the sample bot; waits only where a reply is needed to go on."""
    chat = user.chat.id
    user.send("/start")
    await until_events(tg, chat, 1)
    menu = tg.replies(chat)[0]
    for n, data in enumerate(("count", "count", "about"), start=2):
        user.press(menu, data)
        await until_events(tg, chat, n)
    # The whole conversation at once, a wrong answer included: order alone makes it work.
    for text in ("/order", "XL", "m", f"Name {index}", "maybe", "yes"):
        user.send(text)
    await until_events(tg, chat, 10)
    for text in ("/boom", "/slow", "/help", "/remind"):
        user.send(text)
    await until_events(tg, chat, 15)  # the four answers, then the reminder job


async def run_script(
    tg: FakeTelegram, users: int, run: Callable[[], contextlib.AbstractAsyncContextManager[Any]]
) -> list[list[str]]:
    people = [tg.user(f"User{i}") for i in range(users)]
    async with run():
        await asyncio.gather(*(script(tg, user, i) for i, user in enumerate(people)))
    per_chat = events(tg)
    return [per_chat[user.chat.id] for user in people]


@pytest.mark.timeout(60)
async def test_sample_bot_replies_as_under_ptb_own_runner(tmp_path: Path) -> None:
    users = 4
    timing = {"slow_seconds": 0.05, "remind_seconds": 0.02}
    async with FakeTelegram() as tg:
        app = example.build(
            tg.token, api_url=tg.api_url, persistence_path=tmp_path / "ptb.pickle", **timing
        )
        expected = await run_script(tg, users, lambda: on_ptb_polling(app))
    async with FakeTelegram() as tg:
        app = example.build(
            tg.token, api_url=tg.api_url, persistence_path=tmp_path / "tgr.pickle", **timing
        )

        @contextlib.asynccontextmanager
        async def tgrunner() -> AsyncIterator[None]:
            runner = build_runner(app, settings=Settings())
            task = asyncio.create_task(runner.serve(install_signals=False))
            yield
            runner.stop()
            assert await asyncio.wait_for(task, 30) == 0

        got = await run_script(tg, users, tgrunner)
    assert got == expected
    assert expected[0] == [
        "sendMessage: Hi User0! Pick one:",
        "editMessageText: Count: 1",
        "editMessageText: Count: 2",
        "editMessageText: This bot runs unchanged on python-telegram-bot and on tgrunner.",
        "sendMessage: What size? S, M or L",
        "sendMessage: Please answer S, M or L.",
        "sendMessage: Whose name goes on it?",
        "sendMessage: A size M T-shirt for Name 0. Confirm? yes or no",
        "sendMessage: Please answer yes or no.",
        "sendMessage: Order #1 confirmed: M for Name 0.",
        "sendMessage: Sorry, something went wrong.",
        "sendMessage: Done, after a pause.",
        f"sendMessage: {example.HELP}",
        "sendMessage: Reminder set.",
        "sendMessage: Reminder!",
    ]
