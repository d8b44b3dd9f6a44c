"""aiogram 3 accepts FakeTelegram: its own ``Bot`` and its own polling loop, over real HTTP.

aiogram parses every result with its pydantic models, so a missing or ill-typed field fails the
call. On top of that, every parsed object is walked for fields aiogram kept as extras: aiogram
knows a newer Bot API than the fake's spec, so such a field could only be one the fake made up.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import aiogram.methods as m
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramConflictError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    ChatFullInfo,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
)
from conversation import converse, expected_replies
from pydantic import BaseModel

from tgrunner.testing import FakeTelegram

T = TypeVar("T")

# Every byte value, behind a PNG signature: the upload must survive multipart byte for byte.
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

MENU = InlineKeyboardMarkup(
    inline_keyboard=[
        [
            InlineKeyboardButton(text="Ping", callback_data="ping"),
            InlineKeyboardButton(text="Docs", url="https://core.telegram.org/bots/api"),
        ]
    ]
)


def unknown_fields(obj: Any, path: str = "result") -> list[str]:
    """Paths of the fields aiogram did not know, anywhere in a parsed result."""
    if isinstance(obj, BaseModel):
        found = [f"{path}.{name}" for name in obj.model_extra or {}]
        for name in type(obj).model_fields:
            found += unknown_fields(getattr(obj, name), f"{path}.{name}")
        return found
    if isinstance(obj, list | tuple):
        return [p for i, item in enumerate(obj) for p in unknown_fields(item, f"{path}[{i}]")]
    return []


def known(obj: T) -> T:
    assert unknown_fields(obj) == []
    return obj


def as_json(obj: BaseModel | None) -> Any:
    # Parsed objects compare unequal to built ones (aiogram keeps the bot in them): compare JSON.
    return None if obj is None else obj.model_dump(mode="json", exclude_none=True)


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url))
    async with Bot(tg.token, session=session) as client:
        yield client


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses connections: a webhook that never reaches anything."""
    with socket.socket() as sock:
        # Bound but not listening: the port stays ours and every connect is refused.
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


# -- the Bot, method by method -------------------------------------------------------------


async def test_get_me(tg: FakeTelegram, bot: Bot) -> None:
    me = known(await bot.get_me())
    assert me.id == tg.bot_user["id"] == bot.id
    assert me.is_bot is True
    assert me.username == tg.bot_user["username"]


async def test_get_updates_parses_what_users_sent(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice", username="alice_a")
    team = tg.supergroup("Team", members=[alice])
    start = alice.command("start")
    hello = alice.send("hi @bobby_b, see example.com #news", chat=team)

    updates = known(await bot.get_updates(timeout=5))

    assert [u.message.message_id for u in updates if u.message] == [
        start["message_id"],
        hello["message_id"],
    ]
    first, second = (u.message for u in updates if u.message)
    assert first.text == "/start"
    assert first.chat.type == "private"
    assert first.from_user is not None
    assert first.from_user.id == alice.id
    assert [(e.type, e.offset, e.length) for e in first.entities or ()] == [("bot_command", 0, 6)]
    assert isinstance(first.date, datetime)
    assert second.chat.id == team.id
    assert second.chat.type == "supergroup"
    assert [e.type for e in second.entities or ()] == ["mention", "url", "hashtag"]
    # Confirmed by the next offset: nothing is left.
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == []
    assert tg.pending_updates == 0


async def test_send_message_replies_with_an_inline_keyboard(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    question = alice.send("what now?")

    sent = known(
        await bot.send_message(
            alice.id,
            "Pick one",
            entities=[MessageEntity(type="bold", offset=0, length=4)],
            reply_parameters=ReplyParameters(message_id=question["message_id"]),
            reply_markup=MENU,
        )
    )

    assert sent.message_id > question["message_id"]
    assert sent.chat.id == alice.id
    assert sent.from_user is not None
    assert sent.from_user.id == bot.id
    assert sent.text == "Pick one"
    assert [(e.type, e.offset, e.length) for e in sent.entities or ()] == [("bold", 0, 4)]
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.message_id == question["message_id"]
    assert as_json(sent.reply_markup) == as_json(MENU)
    assert [r["message_id"] for r in tg.replies(alice)] == [sent.message_id]


async def test_send_photo_upload_then_get_file_and_download(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")

    sent = known(
        await bot.send_photo(
            alice.id, BufferedInputFile(PHOTO, filename="dot.png"), caption="a dot"
        )
    )
    assert sent.caption == "a dot"
    assert sent.photo

    file = known(await bot.get_file(sent.photo[-1].file_id))
    assert file.file_id == sent.photo[-1].file_id
    assert file.file_size == len(PHOTO)
    assert file.file_path
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    assert downloaded.getvalue() == PHOTO


async def test_edit_message_text(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    sent = await bot.send_message(alice.id, "draft", reply_markup=MENU)

    edited = await bot.edit_message_text(
        "final", chat_id=alice.id, message_id=sent.message_id, reply_markup=MENU
    )

    assert isinstance(edited, Message)
    known(edited)
    assert edited.message_id == sent.message_id
    assert edited.text == "final"
    assert edited.edit_date is not None
    assert as_json(edited.reply_markup) == as_json(MENU)


async def test_answer_callback_query_for_a_press(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    sent = await bot.send_message(alice.id, "menu", reply_markup=MENU)
    pressed = alice.press(tg.replies(alice)[-1], data="ping")

    [update] = known(await bot.get_updates(timeout=5))

    query = update.callback_query
    assert query is not None
    assert query.id == pressed["id"]
    assert query.data == "ping"
    assert query.from_user.id == alice.id
    assert isinstance(query.message, Message)
    assert query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="pong!", show_alert=True) is True
    [answer] = tg.calls("answerCallbackQuery")
    assert answer.ok
    assert answer.params["text"] == "pong!"


async def test_get_chat(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice", last_name="Smith", username="alice_s")
    team = tg.supergroup("Team", members=[alice])

    private = known(await bot.get_chat(alice.id))
    group = known(await bot.get_chat(team.id))

    assert isinstance(private, ChatFullInfo)
    assert (private.id, private.type, private.first_name, private.last_name, private.username) == (
        alice.id,
        "private",
        "Alice",
        "Smith",
        "alice_s",
    )
    assert (group.id, group.type, group.title) == (team.id, "supergroup", "Team")


async def test_webhook_set_info_and_delete(tg: FakeTelegram, bot: Bot, refused_url: str) -> None:
    alice = tg.user("Alice")
    state = tg.state.bot(tg.token)

    assert await bot.set_webhook(refused_url, secret_token="s3cret", max_connections=7) is True
    alice.send("one")
    alice.send("two")
    # The webhook refuses: both updates stay pending and the error is reported.
    await tg.wait_for(lambda: state.last_error_message is not None)
    info = known(await bot.get_webhook_info())
    assert info.url == refused_url
    assert info.pending_update_count == 2
    assert info.max_connections == 7
    assert isinstance(info.last_error_date, datetime)
    assert info.last_error_message
    # Telegram refuses getUpdates while a webhook is set.
    with pytest.raises(TelegramConflictError):
        await bot.get_updates(timeout=0)

    assert await bot.delete_webhook(drop_pending_updates=True) is True
    info = known(await bot.get_webhook_info())
    assert info.url == ""
    assert info.pending_update_count == 0
    assert await bot.get_updates(timeout=0) == []


# Methods without behaviour of their own: the fake generates their results from the spec.
GENERATED: dict[str, Callable[[int, int], TelegramMethod[Any]]] = {
    "getMyCommands": lambda user, chat: m.GetMyCommands(),
    "getMyName": lambda user, chat: m.GetMyName(language_code="en"),
    "getMyDefaultAdministratorRights": lambda user, chat: m.GetMyDefaultAdministratorRights(),
    "getChatMenuButton": lambda user, chat: m.GetChatMenuButton(chat_id=user),
    "getStarTransactions": lambda user, chat: m.GetStarTransactions(limit=3),
    "getMyStarBalance": lambda user, chat: m.GetMyStarBalance(),
    "getAvailableGifts": lambda user, chat: m.GetAvailableGifts(),
    "getBusinessConnection": lambda user, chat: m.GetBusinessConnection(
        business_connection_id="abc"
    ),
    "getUserChatBoosts": lambda user, chat: m.GetUserChatBoosts(chat_id=chat, user_id=user),
    "getUserProfilePhotos": lambda user, chat: m.GetUserProfilePhotos(user_id=user),
    "getForumTopicIconStickers": lambda user, chat: m.GetForumTopicIconStickers(),
    "getStickerSet": lambda user, chat: m.GetStickerSet(name="animals"),
    "createChatInviteLink": lambda user, chat: m.CreateChatInviteLink(chat_id=chat, name="pals"),
}


async def test_spec_generated_methods(tg: FakeTelegram, bot: Bot) -> None:
    # One test, not one per method: each aiogram Bot costs 0.25 s to close.
    alice = tg.user("Alice")
    team = tg.supergroup("Team", members=[alice])
    for method, make in GENERATED.items():
        assert method not in tg.methods.sync, f"{method} has behaviour of its own"

        result = known(await bot(make(alice.id, team.id)))

        [record] = tg.calls(method)
        assert record.ok, method
        assert isinstance(result, BaseModel | list), method


# -- an echo bot on aiogram's own polling loop ---------------------------------------------


def echo_dispatcher() -> Dispatcher:
    """/start greets with a menu, /echo says its argument, Ping answers the press and says
    "pong", any other text is echoed as a reply."""
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        name = message.from_user.first_name if message.from_user else "stranger"
        await message.answer(f"Hello, {name}!", reply_markup=MENU)

    @dp.message(Command("echo"))
    async def echo_command(message: Message, command: CommandObject) -> None:
        await message.answer(command.args or "(nothing)")

    @dp.callback_query(F.data == "ping")
    async def ping(query: CallbackQuery) -> None:
        await query.answer("pong!")
        assert isinstance(query.message, Message)
        await query.message.answer("pong")

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        assert message.text is not None
        await message.reply(message.text)

    return dp


async def test_echo_bot_on_aiogram_polling(tg: FakeTelegram, bot: Bot) -> None:
    users = [tg.user(name) for name in ("Alice", "Bob", "Carol")]
    dp = echo_dispatcher()
    polling = asyncio.create_task(
        dp.start_polling(
            bot,
            polling_timeout=5,
            # One update at a time, so a burst is answered in order; as tasks, aiogram would
            # not promise an order.
            handle_as_tasks=False,
            handle_signals=False,
            close_bot_session=False,
        )
    )
    try:
        conversations = await asyncio.gather(*(converse(tg, u) for u in users))
        # aiogram confirmed every update with its next offset.
        await tg.wait_for(lambda: tg.pending_updates == 0)
    except BaseException:
        polling.cancel()
        raise
    await dp.stop_polling()
    await polling

    for user, replies in zip(users, conversations, strict=True):
        assert [r["text"] for r in replies] == expected_replies(user.first_name)
        assert [r["text"] for r in tg.replies(user)] == expected_replies(user.first_name)
        assert replies[0]["reply_markup"] == as_json(MENU)
    assert all(r.ok for r in tg.calls())
