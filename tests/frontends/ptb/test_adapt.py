"""Adapting a PTB Application: the bot's token and server, overrides, the user's settings, and
the lifecycle hooks as under ``run_polling`` (a failed start shuts down)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from telegram.ext import ApplicationBuilder, MessageHandler, filters

from frontends.ptb import ptb_sample
from frontends.ptb.helpers import (
    AnyApp,
    on_tgrunner,
)
from tgrunner.errors import ConfigError
from tgrunner.frontends import detect
from tgrunner.frontends.ptb import ALL_TYPES, adapt
from tgrunner.frontends.ptb.request import TgrunnerRequest
from tgrunner.keys import chat_and_user_keys
from tgrunner.runtime.build import build_runner
from tgrunner.settings import PollingOptions, Settings
from tgrunner.testing import FakeTelegram

# -- adapting ----------------------------------------------------------------------------------


async def test_adapt_reads_the_bot_and_applies_overrides(tg: FakeTelegram) -> None:
    app = ptb_sample.build(tg.token, api_url=tg.api_url)
    fe = detect(app, token=None, api_url=None)
    assert fe is not None
    assert (fe.token, fe.api_url) == (tg.token, tg.api_url)
    assert fe.keys is chat_and_user_keys
    assert fe.allowed_updates == ALL_TYPES
    assert "chat_member" in ALL_TYPES
    assert "message_reaction" in ALL_TYPES

    placeholder = ptb_sample.build()
    fe = adapt(placeholder, token=tg.token, api_url=tg.api_url + "/")
    assert (fe.token, fe.api_url) == (tg.token, tg.api_url)
    assert placeholder.bot.base_url == f"{tg.api_url}/bot{tg.token}"
    assert placeholder.bot.base_file_url == f"{tg.api_url}/file/bot{tg.token}"

    custom = ApplicationBuilder().token(tg.token).base_url(tg.api_url + "/bot{token}/test").build()
    with pytest.raises(ConfigError, match="cannot tell where to poll"):
        adapt(custom)
    assert adapt(custom, api_url=tg.api_url).api_url == tg.api_url

    with pytest.raises(ConfigError, match="request='httpx'"):
        adapt(app, request="httpx")
    with pytest.raises(ConfigError, match="is a python-telegram-bot Bot: point tgrunner at"):
        adapt(app.bot)
    with pytest.raises(ConfigError, match=r"ApplicationBuilder: call \.build\(\) on it"):
        adapt(ApplicationBuilder().token(tg.token))
    with pytest.raises(ConfigError, match="Application, not Updater"):
        adapt(app.updater)


@pytest.mark.timeout(30)
async def test_build_runner_keeps_the_users_settings(tg: FakeTelegram) -> None:
    app = ptb_sample.build(tg.token, api_url=tg.api_url)
    runner = build_runner(
        app, settings=Settings(polling=PollingOptions(allowed_updates=("message",)))
    )
    assert runner.settings.polling.allowed_updates == ("message",)
    assert runner.settings.keys is chat_and_user_keys
    await runner.bot.close()


@pytest.mark.timeout(30)
async def test_lifecycle_hooks_run_as_under_run_polling(tg: FakeTelegram) -> None:
    calls: list[str] = []

    def hook(name: str) -> Callable[[AnyApp], Any]:
        async def record(app: AnyApp) -> None:
            calls.append(f"{name}: running={app.running}")

        return record

    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.api_url}/bot")
        .post_init(hook("post_init"))
        .post_stop(hook("post_stop"))
        .post_shutdown(hook("post_shutdown"))
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, ptb_sample.echo))
    alice = tg.user("Alice")
    alice.send("hello")
    async with on_tgrunner(app):
        await tg.wait_for_replies(alice, 1)
        assert calls == ["post_init: running=False"]
        assert app.running
        request = app.bot.request
        assert isinstance(request, TgrunnerRequest)
    assert calls == [
        "post_init: running=False",
        "post_stop: running=False",
        "post_shutdown: running=False",
    ]
    assert request._clients == {}, "the request's connections were left open"


@pytest.mark.timeout(30)
async def test_a_failed_start_shuts_the_application_down(tg: FakeTelegram) -> None:
    calls: list[str] = []

    async def post_init(app: AnyApp) -> None:
        raise RuntimeError("no database")

    async def post_shutdown(app: AnyApp) -> None:
        calls.append("post_shutdown")

    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.api_url}/bot")
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    fe = adapt(app)
    assert fe.startup is not None
    with pytest.raises(RuntimeError, match="no database"):
        await fe.startup()
    assert calls == ["post_shutdown"]
    assert not app.running
