"""``TgrunnerSession`` against aiogram's own ``AiohttpSession``: the same exceptions, the same
requests on the wire, request middlewares kept, and a closed session that opens again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
)

from tgrunner.frontends.aiogram import (
    TgrunnerSession,
    adapt,
)
from tgrunner.testing import FakeTelegram, Faults, FloodLimits

# -- the tgrunner session --------------------------------------------------------------------------


def make_session(kind: str, api_url: str) -> BaseSession:
    api = TelegramAPIServer.from_base(api_url)
    return TgrunnerSession(api) if kind == "tgrunner" else AiohttpSession(api=api)


@pytest.mark.parametrize("kind", ["tgrunner", "aiogram"])
async def test_session_raises_aiogram_exceptions(tg: FakeTelegram, kind: str) -> None:
    alice = tg.user("Alice")
    async with Bot(tg.token, session=make_session(kind, tg.api_url)) as bot:
        with pytest.raises(TelegramBadRequest, match="chat not found"):
            await bot.send_message(chat_id=424242, text="x")
        tg.flood = FloodLimits(per_chat_per_second=0.01, private_burst=1)
        await bot.send_message(alice.id, "one")
        with pytest.raises(TelegramRetryAfter) as retry:
            await bot.send_message(alice.id, "two")
        assert retry.value.retry_after >= 1
        tg.flood = None
        tg.faults = Faults(error_rate=1.0, methods=frozenset({"getChat"}))
        with pytest.raises(TelegramServerError):
            await bot.get_chat(alice.id)
        tg.faults = Faults(latency=1.0, methods=frozenset({"getChat"}))
        with pytest.raises(TelegramNetworkError, match="timeout"):
            await bot.get_chat(alice.id, request_timeout=0.1)  # type: ignore[arg-type]
        tg.faults = None
    async with Bot("1:wrong", session=make_session(kind, tg.api_url)) as stranger:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    async with Bot(tg.token, session=make_session(kind, "http://127.0.0.1:9")) as lost:
        with pytest.raises(TelegramNetworkError):
            await lost.get_me()


async def calls_through(
    kind: str, tg: FakeTelegram, chat_id: int, members: list[int]
) -> list[tuple[str, int, Any]]:
    default = DefaultBotProperties(parse_mode="HTML")
    start = len(tg.requests)
    async with Bot(tg.token, session=make_session(kind, tg.api_url), default=default) as bot:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="d")]]
        )
        await bot.send_message(chat_id, "<b>hi</b>", reply_markup=keyboard)
        await bot.send_message(chat_id, "plain", parse_mode=None, disable_notification=False)
        doc = await bot.send_document(
            chat_id, BufferedInputFile(b"payload", "a.txt"), caption="<i>c</i>"
        )
        await bot.send_media_group(
            chat_id,
            [
                InputMediaPhoto(media=BufferedInputFile(b"p1", "1.jpg")),
                InputMediaPhoto(media=BufferedInputFile(b"p2", "2.jpg"), caption="two"),
            ],
        )
        await bot.restrict_chat_member(
            chat_id,
            user_id=members[0],
            permissions=ChatPermissions(can_send_messages=False),
            until_date=datetime(2030, 1, 1),
        )
        await bot.ban_chat_member(chat_id, user_id=members[1], until_date=timedelta(days=400))
        assert doc.document is not None
        downloaded = await bot.download(doc.document.file_id)
        assert downloaded is not None and downloaded.read() == b"payload"
    # getFile names a file id that differs from run to run; the download checked its content.
    calls = [
        (r.method, r.status, normalised(r.params))
        for r in list(tg.requests)[start:]
        if r.method != "getFile"
    ]
    for method, _, params in calls:
        if method == "banChatMember":  # a timedelta is sent as a time from now
            until = int(params.pop("until_date"))
            assert abs(until - (datetime.now() + timedelta(days=400)).timestamp()) < 60
    return calls


def normalised(value: Any) -> Any:
    """Parameters as recorded, but for the random names in ``attach://<name>``."""
    if isinstance(value, str) and value.startswith("attach://"):
        return "attach://…"
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items()}
    return value


async def test_session_sends_what_aiogram_own_session_sends(tg: FakeTelegram) -> None:
    alice, bob = tg.user("Alice"), tg.user("Bob")
    group = tg.supergroup("S", members=[alice, bob])
    via_tgrunner = await calls_through("tgrunner", tg, group.id, [alice.id, bob.id])
    via_aiogram = await calls_through("aiogram", tg, group.id, [alice.id, bob.id])
    assert via_tgrunner == via_aiogram
    assert [m for m, status, _ in via_tgrunner if status != 200] == []
    first = via_tgrunner[0][2]
    assert first["parse_mode"] == "HTML"
    assert first["reply_markup"] == {"inline_keyboard": [[{"text": "b", "callback_data": "d"}]]}


async def test_session_keeps_request_middlewares_and_reopens(tg: FakeTelegram) -> None:
    seen: list[str] = []

    async def spy(make_request: Any, bot: Bot, method: Any) -> Any:
        seen.append(type(method).__name__)
        return await make_request(bot, method)

    bot = Bot("1:a", session=AiohttpSession())
    bot.session.middleware(spy)
    fe = adapt(Dispatcher(), bot=bot, token=tg.token, api_url=tg.api_url)
    assert fe.startup is not None and fe.shutdown is not None
    await fe.startup()
    await bot.get_me()
    await fe.shutdown()
    me = await bot.get_me()  # a closed session opens a new pool, as AiohttpSession does
    await bot.session.close()
    await bot.session.close()
    assert me.id == bot.id
    assert isinstance(bot.session, TgrunnerSession)
    assert seen == ["GetMe", "GetMe", "GetMe"]  # bot.me() at startup, then the two calls
