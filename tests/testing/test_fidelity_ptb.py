"""python-telegram-bot 22 accepts FakeTelegram: its own ``telegram.Bot`` and its own
``Application`` polling loop, over real HTTP.

PTB parses every result with ``de_json``, which fails on a missing required field. It keeps the
fields it does not know in ``api_kwargs``; every parsed object is walked, and such a field is
allowed only where the fake's spec declares it (PTB 22.8 knows Bot API 10.0, the spec is 10.1)
or where a newer Bot API made it required (``NEWER_REQUIRED_FIELDS``), so a field the fake made
up fails the test.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import pytest
import telegram
from conversation import converse, expected_replies
from telegram import (
    CallbackQuery,
    ChatFullInfo,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.error import Conflict
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tgrunner.testing import FakeTelegram
from tgrunner.testing.botapi import load_spec
from tgrunner.testing.fake.base import NEWER_REQUIRED_FIELDS

SPEC = load_spec()
T = TypeVar("T")

# Every byte value, behind a PNG signature: the upload must survive multipart byte for byte.
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

MENU = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Ping", callback_data="ping"),
            InlineKeyboardButton("Docs", url="https://core.telegram.org/bots/api"),
        ]
    ]
)


def _attributes(obj: telegram.TelegramObject) -> Iterator[str]:
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if not name.startswith("_") and name != "api_kwargs":
                yield name


def unknown_fields(obj: Any, path: str = "result") -> list[str]:
    """Paths of the fields, anywhere in a parsed result, that neither PTB nor the spec knows."""
    if isinstance(obj, telegram.TelegramObject):
        spec_type = SPEC.types.get(type(obj).__name__)
        declared = {f.name for f in spec_type.fields} if spec_type else set()
        declared |= set(NEWER_REQUIRED_FIELDS.get(type(obj).__name__, ()))
        found = [f"{path}.{name}" for name in obj.api_kwargs if name not in declared]
        for name in _attributes(obj):
            found += unknown_fields(getattr(obj, name, None), f"{path}.{name}")
        return found
    if isinstance(obj, list | tuple):
        return [p for i, item in enumerate(obj) for p in unknown_fields(item, f"{path}[{i}]")]
    return []


def known(obj: T) -> T:
    assert unknown_fields(obj) == []
    return obj


def _urls(tg: FakeTelegram) -> dict[str, str]:
    return {"base_url": f"{tg.api_url}/bot", "base_file_url": f"{tg.api_url}/file/bot"}


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(tg.token, **_urls(tg)) as client:
        yield client


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses connections: a webhook that never reaches anything."""
    with socket.socket() as sock:
        # Bound but not listening: the port stays ours and every connect is refused.
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


# -- the Bot, method by method -------------------------------------------------------------


async def test_get_me(tg: FakeTelegram, bot: telegram.Bot) -> None:
    me = known(await bot.get_me())
    assert me.id == tg.bot_user["id"] == bot.id
    assert me.is_bot is True
    assert me.username == tg.bot_user["username"]
    assert bot.username == tg.bot_user["username"]


async def test_get_updates_parses_what_users_sent(tg: FakeTelegram, bot: telegram.Bot) -> None:
    alice = tg.user("Alice", username="alice_a")
    team = tg.supergroup("Team", members=[alice])
    start = alice.command("start")
    hello = alice.send("hi @bobby_b, see example.com #news", chat=team)

    updates = known(await bot.get_updates(timeout=5))

    messages = [u.message for u in updates if u.message]
    assert [m.message_id for m in messages] == [start["message_id"], hello["message_id"]]
    first, second = messages
    assert first.text == "/start"
    assert first.chat.type == "private"
    assert first.from_user is not None
    assert first.from_user.id == alice.id
    assert [(e.type, e.offset, e.length) for e in first.entities] == [("bot_command", 0, 6)]
    assert isinstance(first.date, datetime)
    assert second.chat.id == team.id
    assert second.chat.type == "supergroup"
    assert [e.type for e in second.entities] == ["mention", "url", "hashtag"]
    # Confirmed by the next offset: nothing is left.
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == ()
    assert tg.pending_updates == 0


async def test_send_message_replies_with_an_inline_keyboard(
    tg: FakeTelegram, bot: telegram.Bot
) -> None:
    alice = tg.user("Alice")
    question = alice.send("what now?")

    sent = known(
        await bot.send_message(
            alice.id,
            "Pick one",
            entities=[MessageEntity(MessageEntity.BOLD, 0, 4)],
            reply_parameters=ReplyParameters(question["message_id"]),
            reply_markup=MENU,
        )
    )

    assert sent.message_id > question["message_id"]
    assert sent.chat.id == alice.id
    assert sent.from_user is not None
    assert sent.from_user.id == bot.id
    assert sent.text == "Pick one"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 4)]
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.message_id == question["message_id"]
    assert sent.reply_markup == MENU
    assert [r["message_id"] for r in tg.replies(alice)] == [sent.message_id]


async def test_send_photo_upload_then_get_file_and_download(
    tg: FakeTelegram, bot: telegram.Bot
) -> None:
    alice = tg.user("Alice")

    sent = known(
        await bot.send_photo(
            alice.id, telegram.InputFile(PHOTO, filename="dot.png"), caption="a dot"
        )
    )
    assert sent.caption == "a dot"
    assert sent.photo

    file = known(await bot.get_file(sent.photo[-1].file_id))
    assert file.file_id == sent.photo[-1].file_id
    assert file.file_size == len(PHOTO)
    # PTB makes the path a full download URL under base_file_url.
    assert file.file_path is not None
    assert file.file_path.startswith(f"{tg.api_url}/file/bot{tg.token}/")
    assert bytes(await file.download_as_bytearray()) == PHOTO


async def test_edit_message_text(tg: FakeTelegram, bot: telegram.Bot) -> None:
    alice = tg.user("Alice")
    sent = await bot.send_message(alice.id, "draft", reply_markup=MENU)

    edited = await bot.edit_message_text(
        "final", chat_id=alice.id, message_id=sent.message_id, reply_markup=MENU
    )

    assert isinstance(edited, Message)
    known(edited)
    assert edited.message_id == sent.message_id
    assert edited.text == "final"
    assert isinstance(edited.edit_date, datetime)
    assert edited.reply_markup == MENU


async def test_answer_callback_query_for_a_press(tg: FakeTelegram, bot: telegram.Bot) -> None:
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


async def test_get_chat(tg: FakeTelegram, bot: telegram.Bot) -> None:
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


async def test_webhook_set_info_and_delete(
    tg: FakeTelegram, bot: telegram.Bot, refused_url: str
) -> None:
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
    with pytest.raises(Conflict):
        await bot.get_updates(timeout=0)

    assert await bot.delete_webhook(drop_pending_updates=True) is True
    info = known(await bot.get_webhook_info())
    assert info.url == ""
    assert info.pending_update_count == 0
    assert await bot.get_updates(timeout=0) == ()


# Methods without behaviour of their own: the fake generates their results from the spec.
GENERATED: dict[str, Callable[[telegram.Bot, int, int], Awaitable[Any]]] = {
    "getMyCommands": lambda bot, user, chat: bot.get_my_commands(),
    "getMyName": lambda bot, user, chat: bot.get_my_name(language_code="en"),
    "getMyDefaultAdministratorRights": lambda bot, user, chat: (
        bot.get_my_default_administrator_rights()
    ),
    "getChatMenuButton": lambda bot, user, chat: bot.get_chat_menu_button(chat_id=user),
    "getStarTransactions": lambda bot, user, chat: bot.get_star_transactions(limit=3),
    "getMyStarBalance": lambda bot, user, chat: bot.get_my_star_balance(),
    "getAvailableGifts": lambda bot, user, chat: bot.get_available_gifts(),
    "getBusinessConnection": lambda bot, user, chat: bot.get_business_connection("abc"),
    "getUserChatBoosts": lambda bot, user, chat: bot.get_user_chat_boosts(chat, user),
    "getUserProfilePhotos": lambda bot, user, chat: bot.get_user_profile_photos(user),
    "getForumTopicIconStickers": lambda bot, user, chat: bot.get_forum_topic_icon_stickers(),
    "getStickerSet": lambda bot, user, chat: bot.get_sticker_set("animals"),
    "createChatInviteLink": lambda bot, user, chat: bot.create_chat_invite_link(chat, name="pals"),
}


async def test_spec_generated_methods(tg: FakeTelegram, bot: telegram.Bot) -> None:
    alice = tg.user("Alice")
    team = tg.supergroup("Team", members=[alice])
    for method, call in GENERATED.items():
        assert method not in tg.methods.sync, f"{method} has behaviour of its own"

        result = known(await call(bot, alice.id, team.id))

        [record] = tg.calls(method)
        assert record.ok, method
        assert isinstance(result, telegram.TelegramObject | tuple), method


# -- an echo bot on PTB's own Application ----------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    assert update.effective_user is not None
    await update.effective_chat.send_message(
        f"Hello, {update.effective_user.first_name}!", reply_markup=MENU
    )


async def echo_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_chat is not None
    await update.effective_chat.send_message(" ".join(context.args or ()) or "(nothing)")


async def ping(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert isinstance(query, CallbackQuery)
    await query.answer("pong!")
    assert isinstance(query.message, Message)
    await context.bot.send_message(query.message.chat.id, "pong")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.message
    assert message is not None
    assert message.text is not None
    await message.reply_text(message.text, do_quote=True)


def echo_application(tg: FakeTelegram) -> Application[Any, Any, Any, Any, Any, Any]:
    """/start greets with a menu, /echo says its argument, Ping answers the press and says
    "pong", any other text is echoed as a reply."""
    urls = _urls(tg)
    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(urls["base_url"])
        .base_file_url(urls["base_file_url"])
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("echo", echo_command))
    app.add_handler(CallbackQueryHandler(ping, pattern="^ping$"))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    return app


async def test_echo_bot_on_ptb_application(tg: FakeTelegram) -> None:
    users = [tg.user(name) for name in ("Alice", "Bob", "Carol")]
    app = echo_application(tg)
    # PTB handles one update at a time by default (concurrent_updates=False): a burst is
    # answered in order.
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            conversations = await asyncio.gather(*(converse(tg, u) for u in users))
            # PTB confirmed every update with its next offset.
            await tg.wait_for(lambda: tg.pending_updates == 0)
        finally:
            await app.updater.stop()
            await app.stop()

    for user, replies in zip(users, conversations, strict=True):
        assert [r["text"] for r in replies] == expected_replies(user.first_name)
        assert [r["text"] for r in tg.replies(user)] == expected_replies(user.first_name)
        assert replies[0]["reply_markup"] == MENU.to_dict()
    assert all(r.ok for r in tg.calls())
