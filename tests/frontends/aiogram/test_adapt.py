"""Adapting an aiogram Dispatcher: which Bot, token, server and session; clear errors for what
cannot run; the factory import string and both session modes."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TEST, TelegramAPIServer
from aiogram.fsm.strategy import FSMStrategy

from frontends.aiogram import aiogram_echo
from frontends.aiogram.helpers import running
from tgrunner.errors import ConfigError
from tgrunner.frontends.aiogram import (
    TgrunnerSession,
    adapt,
    fsm_keys,
)
from tgrunner.testing import FakeTelegram

# -- finding the Bot, token, server and session ----------------------------------------------------


def test_the_bot_is_found_beside_the_dispatcher_in_its_module() -> None:
    fe = adapt(aiogram_echo.dp, session="aiogram")
    assert fe.token == aiogram_echo.TOKEN
    assert fe.api_url == "https://api.telegram.org"
    assert fe.allowed_updates == ("message",)
    assert fe.keys is fsm_keys(FSMStrategy.USER_IN_CHAT)


def test_the_bot_is_found_in_workflow_data_or_given() -> None:
    bot = Bot("1:first-token")
    assert adapt(Dispatcher(bot=bot), session="aiogram").token == "1:first-token"
    other = Bot("2:second-token")
    assert adapt((Dispatcher(), [other]), session="aiogram").token == "2:second-token"
    assert adapt((other, Dispatcher()), session="aiogram").token == "2:second-token"
    assert adapt(Dispatcher(), bot=other, session="aiogram").token == "2:second-token"
    assert adapt(Dispatcher(disable_fsm=True), bot=other, session="aiogram").keys is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (lambda: Dispatcher(), "Found no aiogram Bot"),
        (lambda: (Dispatcher(), [Bot("1:a"), Bot("2:b")]), "Found 2 aiogram Bots given"),
        (lambda: Dispatcher(a=Bot("1:a"), b=Bot("2:b")), "Found 2 aiogram Bots in the"),
        (lambda: (Dispatcher(), "bot"), "must be (dispatcher, bot)"),
        (lambda: Bot("1:a"), "is an aiogram Bot: point at the Dispatcher"),
        (lambda: Router(), "is an aiogram Router, not a Dispatcher"),
    ],
)
def test_unusable_targets_fail_clearly(target: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        adapt(target())


def test_token_server_and_session_resolution() -> None:
    own = TelegramAPIServer.from_base("http://127.0.0.1:8081")
    bot = Bot("1:own-token", session=AiohttpSession(api=own, timeout=7))
    middleware = bot.session.middleware
    fe = adapt(Dispatcher(), bot=bot)
    assert fe.api_url == "http://127.0.0.1:8081"  # the Bot's configured server
    assert isinstance(bot.session, TgrunnerSession)
    assert bot.session.timeout == 7
    assert bot.session.middleware is middleware  # request middlewares are kept

    fe = adapt(Dispatcher(), bot=bot, token="2:given-token", api_url="http://127.0.0.1:9000/")
    assert (fe.token, bot.token, bot.id) == ("2:given-token", "2:given-token", 2)
    assert fe.api_url == "http://127.0.0.1:9000"
    assert bot.session.api.api_url(bot.token, "getMe") == (
        "http://127.0.0.1:9000/bot2:given-token/getMe"
    )

    class Custom(AiohttpSession):
        pass

    kept = Bot("1:own-token", session=Custom())
    adapt(Dispatcher(), bot=kept)
    assert type(kept.session) is Custom

    with pytest.raises(ConfigError, match="pass api_url"):
        adapt(Dispatcher(), bot=Bot("1:a", session=AiohttpSession(api=TEST)))
    with pytest.raises(ConfigError, match="session must be one of"):
        adapt(Dispatcher(), bot=Bot("1:a"), session="httpx")
    with pytest.raises(ConfigError, match="not valid for aiogram"):
        adapt(Dispatcher(), bot=Bot("1:a"), token="no token")


async def test_a_factory_import_string_and_both_session_modes(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    async with running("frontends.aiogram.aiogram_echo:create", tg):
        alice.send("factory")
        await tg.wait_for_replies(alice, 1)
    dp, bot = aiogram_echo.create()
    closed: list[str] = []
    close = bot.session.close

    async def recorded_close() -> None:  # aiogram's own close, recorded
        closed.append("closed")
        await close()

    bot.session.close = recorded_close  # type: ignore[method-assign]
    async with running((dp, bot), tg, session="aiogram"):
        alice.send("aiogram")
        await tg.wait_for_replies(alice, 2)
        assert type(bot.session) is AiohttpSession
        before = len(closed)  # aiogram closes it itself before the first request
    assert len(closed) > before, "aiogram's own session was not closed at shutdown"
    dp, bot = aiogram_echo.create()
    async with running((dp, bot), tg, session="tgrunner"):
        alice.send("tgrunner")
        await tg.wait_for_replies(alice, 3)
        assert type(bot.session) is TgrunnerSession
    assert [r["text"] for r in tg.replies(alice)] == ["factory", "aiogram", "tgrunner"]
