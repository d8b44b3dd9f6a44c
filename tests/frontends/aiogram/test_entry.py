"""aiogram entry points run unchanged, in-process against FakeTelegram: ``await
dp.start_polling(bot, ...)`` and ``dp.run_polling(bot)`` run on tgrunner with the options passed
there, the code after them runs once tgrunner stopped, and aiogram's own polling never runs
(every getUpdates is tgrunner's: aiogram's never sends ``limit``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tgrunner.errors import ConfigError
from tgrunner.runtime.build import build_launcher
from tgrunner.runtime.entry import EntryPoint
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[2] / "bots"
# tgrunner's polling defaults, so the timeout passed to start_polling applies.
SETTINGS = Settings(grace=5.0)


@pytest.fixture
def in_bots(monkeypatch: pytest.MonkeyPatch, tg: FakeTelegram) -> Iterator[None]:
    monkeypatch.chdir(BOTS)
    monkeypatch.setenv("BOT_TOKEN", tg.token)
    yield
    sys.path[:] = [p for p in sys.path if p != str(BOTS)]


def _entry(target: Any, tg: FakeTelegram) -> EntryPoint:
    entry = build_launcher(target, token=tg.token, api_url=tg.api_url, settings=SETTINGS)
    assert isinstance(entry, EntryPoint)
    return entry


def _echo_dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo {message.text}")

    return dp


def _bot(tg: FakeTelegram) -> Bot:
    return Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url)))


def _all_polls_are_tgrunners(tg: FakeTelegram) -> list[dict[str, Any]]:
    polls = [call.params for call in tg.calls("getUpdates")]
    assert polls, "nothing polled"
    assert all("limit" in params for params in polls), polls  # aiogram's own never sends it
    return polls


async def _reply(tg: FakeTelegram, text: str) -> str:
    user = tg.user()
    user.send(text)
    replies = await tg.wait_for_replies(user, 1, timeout=10)
    return str(replies[0]["text"])


@pytest.mark.usefixtures("in_bots")
async def test_main_runs_with_its_options_data_resources_and_cleanup(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiogram")
    entry = _entry("aiogram_quick_main:main", tg)
    task = asyncio.ensure_future(entry.serve(install_signals=False))
    # The workflow data passed to start_polling reaches the handler.
    assert await _reply(tg, "hi") == "echo: hi"
    assert entry.runner is not None
    entry.stop()
    assert await asyncio.wait_for(task, 10) == 0
    polls = _all_polls_are_tgrunners(tg)
    assert {p["timeout"] for p in polls} <= {7, 0}, polls  # polling_timeout=7
    assert {tuple(p["allowed_updates"]) for p in polls if "allowed_updates" in p} == {("message",)}
    # The code after start_polling ran, and the resource opened around it was open meanwhile.
    assert "main: cleanup ran (resource open during polling: True)" in capsys.readouterr().err
    assert "Start polling" not in caplog.text


async def test_a_sync_main_calling_run_polling_runs_on_tgrunner(tg: FakeTelegram) -> None:
    after: list[str] = []

    def main() -> None:
        dp = _echo_dispatcher()
        dp.run_polling(_bot(tg), polling_timeout=3)
        after.append("run_polling returned")

    entry = _entry(main, tg)
    task = asyncio.ensure_future(entry.serve(install_signals=False))
    assert await _reply(tg, "sync") == "echo sync"
    entry.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert {p["timeout"] for p in _all_polls_are_tgrunners(tg)} <= {3, 0}
    assert after == ["run_polling returned"]


async def test_a_restart_loop_ends_after_the_first_run(tg: FakeTelegram) -> None:
    runs: list[int] = []

    async def main() -> None:
        dp, bot = _echo_dispatcher(), _bot(tg)
        while True:  # a common "restart on failure" loop: stopping must end it
            await dp.start_polling(bot)
            runs.append(1)

    entry = _entry(main, tg)
    task = asyncio.ensure_future(entry.serve(install_signals=False))
    assert await _reply(tg, "once") == "echo once"
    entry.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert runs == [1]


async def test_a_stop_before_main_polls_ends_it_at_its_call(tg: FakeTelegram) -> None:
    ready = asyncio.Event()

    async def main() -> None:
        await ready.wait()
        await _echo_dispatcher().start_polling(_bot(tg))

    entry = _entry(main, tg)
    task = asyncio.ensure_future(entry.serve(install_signals=False))
    entry.stop()
    ready.set()
    assert await asyncio.wait_for(task, 10) == 0
    assert tg.calls() == []


async def test_a_bot_that_cannot_be_built_ends_main_past_its_except_exception(
    tg: FakeTelegram,
) -> None:
    swallowed: list[BaseException] = []

    async def main() -> None:
        dp = _echo_dispatcher()
        try:
            await dp.start_polling(_bot(tg), Bot("2:other-token-for-the-test"))
        except Exception as exc:  # what many mains do; tgrunner's error must get through
            swallowed.append(exc)

    entry = _entry(main, tg)
    with pytest.raises(ConfigError, match="Found 2 aiogram Bots given"):
        await entry.serve(install_signals=False)
    assert swallowed == []
    assert tg.calls("getUpdates") == []


async def test_main_returning_without_polling_or_registering_a_webhook_is_refused(
    tg: FakeTelegram,
) -> None:
    async def returns() -> None:
        _echo_dispatcher()

    with pytest.raises(ConfigError, match=r"returns returned without starting a bot"):
        await _entry(returns, tg).serve(install_signals=False)

    def webhook() -> None:
        app = web.Application()
        SimpleRequestHandler(dispatcher=_echo_dispatcher(), bot=_bot(tg)).register(app, path="/w")
        web.run_app(app)

    with pytest.raises(ConfigError, match="tgrunner runs the webhook itself: point tgrunner"):
        await _entry(webhook, tg).serve(install_signals=False)
    assert tg.calls() == []
