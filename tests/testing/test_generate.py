"""Generated values are faithful: every Bot API type and every method's result parses with the
clients of aiogram 3 and python-telegram-bot 22, as those clients parse Telegram's answers.

A type or method the installed client does not know (the spec may be newer) is skipped with a
reason naming it; the skip lists are computed and must stay small, so the tests cannot pass by
skipping.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import aiogram
import aiogram.methods
import aiogram.types
import orjson
import pytest
import telegram
from aiogram import Bot as AiogramBot
from pydantic import TypeAdapter

from tgrunner.testing.botapi import TypeDef, load_spec
from tgrunner.testing.fake.base import NEWER_REQUIRED_FIELDS, Upload
from tgrunner.testing.fake.generate import MAX_DEPTH, Generator

SPEC = load_spec()
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
NOW = 1_750_000_000
SEEDS = (0, 1, 2)

# InputFile has no JSON form: it is only ever a multipart upload.
TYPE_NAMES = sorted(name for name in SPEC.types if name != "InputFile")
METHOD_NAMES = sorted(SPEC.methods)

AIOGRAM_UNKNOWN_TYPES = sorted(n for n in TYPE_NAMES if not hasattr(aiogram.types, n))
PTB_UNKNOWN_TYPES = sorted(n for n in TYPE_NAMES if not hasattr(telegram, n))
AIOGRAM_UNKNOWN_METHODS = sorted(
    n for n in METHOD_NAMES if not hasattr(aiogram.methods, n[0].upper() + n[1:])
)
PTB_UNKNOWN_METHODS = sorted(n for n in METHOD_NAMES if not hasattr(telegram.Bot, n))

AIOGRAM = f"aiogram {aiogram.__version__} (Bot API {aiogram.__api_version__})"
PTB = f"python-telegram-bot {telegram.__version__} (Bot API {telegram.constants.BOT_API_VERSION})"

# PTB 22.8 deprecates deserialising the input-only InputPollOption; Telegram never sends one,
# the test parses it only to check the generated shape.
PTB_INPUT_ONLY = pytest.mark.filterwarnings(
    "ignore:.*InputPollOption.de_json. is deprecated:telegram.warnings.PTBDeprecationWarning"
)
# PTB announces that duration attributes will become timedeltas; it warns on parsing whatever
# the data's source, real Telegram included.
PTB_TIMEDELTA = pytest.mark.filterwarnings(
    "ignore:.*will be of type .datetime.timedelta.:telegram.warnings.PTBDeprecationWarning"
)


def _cases() -> Iterator[Any]:
    """(type, concrete type) pairs: each concrete type as itself, and each abstract type as each
    of its concrete subtypes (so the discriminator is checked) and as the generator's pick."""
    for name in TYPE_NAMES:
        td = SPEC.types[name]
        if not td.subtypes:
            yield pytest.param(name, name, id=name)
            continue
        yield pytest.param(name, None, id=f"{name}-picked")
        for sub in td.subtypes:
            if sub in SPEC.types:
                yield pytest.param(name, sub, id=f"{name}-{sub}")


CASES = list(_cases())


@functools.cache
def _generators() -> dict[int, Generator]:
    return {seed: Generator(seed=seed, clock=lambda: NOW) for seed in SEEDS}


def _values(td: TypeDef, concrete: str | None) -> Iterator[Any]:
    for gen in _generators().values():
        yield gen.object(concrete) if concrete else gen.value(td.name)


@pytest.fixture(scope="module")
def aiogram_bot() -> AiogramBot:
    # No request is made: the session is only used to parse answers.
    return AiogramBot(TOKEN)


@pytest.fixture(scope="module")
def ptb_bot() -> telegram.Bot:
    return telegram.Bot(TOKEN)


# -- aiogram ---------------------------------------------------------------------------------


@functools.cache
def _aiogram_adapter(type_name: str) -> TypeAdapter[Any]:
    # aiogram types an abstract field as the union of its subtypes, named "<Type>Union".
    if SPEC.types[type_name].subtypes:
        return TypeAdapter(getattr(aiogram.types, f"{type_name}Union"))
    return TypeAdapter(getattr(aiogram.types, type_name))


@pytest.mark.parametrize(("type_name", "concrete"), CASES)
def test_type_parses_with_aiogram(
    type_name: str, concrete: str | None, aiogram_bot: AiogramBot
) -> None:
    unknown = {type_name, concrete} & set(AIOGRAM_UNKNOWN_TYPES)
    if unknown:
        pytest.skip(f"{AIOGRAM} has no {', '.join(sorted(unknown))}")
    for value in _values(SPEC.types[type_name], concrete):
        orjson.dumps(value)
        parsed = _aiogram_adapter(type_name).validate_python(value, context={"bot": aiogram_bot})
        if concrete:
            assert type(parsed).__name__ == concrete


@pytest.mark.parametrize("method_name", METHOD_NAMES)
def test_result_parses_with_aiogram(method_name: str, aiogram_bot: AiogramBot) -> None:
    if method_name in AIOGRAM_UNKNOWN_METHODS:
        pytest.skip(f"{AIOGRAM} has no method {method_name}")
    method_cls = getattr(aiogram.methods, method_name[0].upper() + method_name[1:])
    for value in _results(method_name):
        body = orjson.dumps({"ok": True, "result": value}).decode()
        # The path aiogram's sessions take with every answer from Telegram.
        response = aiogram_bot.session.check_response(
            aiogram_bot, method_cls.model_construct(), 200, body
        )
        assert response.ok


# -- python-telegram-bot ---------------------------------------------------------------------


def _ptb_parse(type_name: str, concrete: str | None, value: Any, bot: telegram.Bot) -> Any:
    base = getattr(telegram, type_name)
    # PTB dispatches an abstract type to its subtypes only where the base class defines its
    # own de_json (ChatMember, MessageOrigin, ...). Input-only bases (InputMedia) and unions
    # (InputPollMedia) are never received from Telegram; parse those as the concrete class.
    if isinstance(base, type) and "de_json" in vars(base):
        return base.de_json(value, bot)
    return getattr(telegram, concrete or type_name).de_json(value, bot)


@PTB_INPUT_ONLY
@PTB_TIMEDELTA
@pytest.mark.parametrize(("type_name", "concrete"), CASES)
def test_type_parses_with_ptb(type_name: str, concrete: str | None, ptb_bot: telegram.Bot) -> None:
    unknown = {type_name, concrete} & set(PTB_UNKNOWN_TYPES)
    if unknown:
        pytest.skip(f"{PTB} has no {', '.join(sorted(unknown))}")
    base = getattr(telegram, type_name)
    if concrete is None and not (isinstance(base, type) and "de_json" in vars(base)):
        pytest.skip(f"{PTB} does not dispatch {type_name}; each subtype is checked on its own")
    for value in _values(SPEC.types[type_name], concrete):
        parsed = _ptb_parse(type_name, concrete, value, ptb_bot)
        if concrete:
            assert type(parsed).__name__ == concrete


@PTB_TIMEDELTA
@pytest.mark.parametrize("method_name", METHOD_NAMES)
def test_result_parses_with_ptb(method_name: str, ptb_bot: telegram.Bot) -> None:
    if method_name in PTB_UNKNOWN_METHODS:
        pytest.skip(f"{PTB} has no method {method_name}")
    returns = SPEC.methods[method_name].returns
    for value in _results(method_name):
        value = orjson.loads(orjson.dumps(value))
        # As Bot.do_api_request: True stays, a list is de_list-ed, an object de_json-ed.
        if isinstance(value, bool):
            assert value is True
            continue
        if isinstance(value, str | int):
            assert any(r in ("String", "Integer") for r in returns)
            continue
        base = next(r for r in returns if r != "Boolean").removeprefix("Array of ")
        cls = getattr(telegram, base)
        parsed = (
            cls.de_list(value, ptb_bot) if isinstance(value, list) else cls.de_json(value, ptb_bot)
        )
        assert parsed


def _results(method_name: str) -> Iterator[Any]:
    """Results for no parameters, for the required ones, and for all of them."""
    method = SPEC.methods[method_name]
    gen = Generator(seed=7, clock=lambda: NOW)
    yield gen.result(method_name, {})
    for only_required in (True, False):
        params = {
            f.name: gen.value(f.types, hint=f.name)
            for f in method.fields
            if f.required or not only_required
        }
        yield gen.result(method_name, params)


# -- the skip lists stay small ---------------------------------------------------------------


def test_skipped_types_and_methods_are_few() -> None:
    # PTB 22.8 (Bot API 10.0) lacks the rich-message family added in Bot API 10.1: 57 of 359
    # types. A larger list means something is wrong with the lookup, not with the client.
    for unknown in (AIOGRAM_UNKNOWN_TYPES, PTB_UNKNOWN_TYPES):
        assert len(unknown) < 0.20 * len(TYPE_NAMES), unknown
    for unknown in (AIOGRAM_UNKNOWN_METHODS, PTB_UNKNOWN_METHODS):
        assert len(unknown) < 0.05 * len(METHOD_NAMES), unknown
    core = {"Update", "Message", "Chat", "User", "CallbackQuery", "ChatMember", "InlineQuery"}
    assert not core & {*AIOGRAM_UNKNOWN_TYPES, *PTB_UNKNOWN_TYPES}


def test_newer_required_fields_are_not_in_the_spec() -> None:
    # Once the spec has them they come from the spec; the table must then be pruned.
    for type_name, extra in NEWER_REQUIRED_FIELDS.items():
        known = {f.name for f in SPEC.types[type_name].fields}
        assert not extra.keys() & known, type_name


# -- what the values look like ---------------------------------------------------------------


def _gen(**kwargs: Any) -> Generator:
    return Generator(clock=lambda: NOW, **kwargs)


def test_discriminators_come_from_the_descriptions() -> None:
    gen = _gen()
    assert gen.object("ChatMemberBanned")["status"] == "kicked"
    assert gen.object("ChatMemberOwner")["status"] == "creator"
    assert gen.object("BotCommandScopeChat")["type"] == "chat"
    assert gen.object("MessageOriginHiddenUser")["type"] == "hidden_user"
    assert gen.object("InputMediaPhoto")["type"] == "photo"
    assert gen.object("ChatBoostSourceGiftCode")["source"] == "gift_code"
    assert gen.object("InaccessibleMessage")["date"] == 0
    assert gen.object("Sticker")["type"] == "regular"
    assert gen.object("ForceReply")["force_reply"] is True
    assert gen.object("ReplyKeyboardRemove")["remove_keyboard"] is True
    assert gen.object("User")["is_bot"] is False


def test_every_subtype_has_its_own_discriminator() -> None:
    gen = _gen()
    checked = 0
    for td in SPEC.types.values():
        subs = [SPEC.types[s] for s in td.subtypes if s in SPEC.types]
        # The discriminator is the first field that all subtypes share ("type", "status", ...).
        firsts = {(sub.fields[0].name, sub.fields[0].types) for sub in subs if sub.fields}
        if len(firsts) != 1 or len(subs) != len(td.subtypes):
            continue
        ((key, types),) = firsts
        if types != ("String",):
            continue
        values = [gen.object(sub.name)[key] for sub in subs]
        for sub, value in zip(subs, values, strict=True):
            assert value in sub.fields[0].description, (sub.name, key, value)
        # Cached and uploaded inline results share their type and differ by their fields.
        if td.name != "InlineQueryResult":
            assert len(set(values)) == len(values), td.name
        checked += 1
    assert checked >= 20


def test_optional_fields_are_omitted_so_recursion_is_bounded() -> None:
    gen = _gen()
    message = gen.object("Message")
    assert set(message) == {"message_id", "from", "date", "chat"}
    update = gen.object("Update")
    assert set(update) == {"update_id", "message"}
    deep = gen.value("Array of Array of RichText")
    assert len(orjson.dumps(deep)) < 100_000


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def test_depth_is_bounded_for_every_type() -> None:
    for seed in SEEDS:
        gen = _gen(seed=seed)
        for name in TYPE_NAMES:
            # Each level of MAX_DEPTH is an object or array; leaves add a little.
            assert _depth(gen.value(name)) <= 2 * MAX_DEPTH + 4, name


def test_values_are_realistic() -> None:
    gen = _gen()
    message = gen.object("Message")
    assert 0 < message["from"]["id"] < 2**52
    assert message["date"] == NOW
    assert message["chat"] == {
        "id": message["from"]["id"],
        "type": "private",
        "first_name": message["from"]["first_name"],
    }
    photo = gen.object("PhotoSize")
    assert photo["file_id"].startswith("AgAC")
    assert len(photo["file_id"]) > 40
    assert photo["file_unique_id"].startswith("AQAD")
    assert gen.object("ChatInviteLink")["invite_link"].startswith("https://t.me/+")
    assert gen.object("ChatInviteLink", expire_date=NOW + 5)["expire_date"] == NOW + 5


def test_chat_type_follows_the_id() -> None:
    gen = _gen()
    expected = {5: "private", -5: "group", -1001234567890: "supergroup", "@news": "channel"}
    for chat_id, kind in expected.items():
        chat = gen.result("sendMessage", {"chat_id": chat_id, "text": "hi"})["chat"]
        assert chat["type"] == kind
        assert ("title" in chat) == (kind != "private")
    channel = gen.result("getChat", {"chat_id": "@news"})
    assert channel["type"] == "channel"
    assert channel["username"] == "news"
    assert channel["id"] < -1_000_000_000_000
    assert gen.result("getChat", {"chat_id": "@news"})["id"] == channel["id"]


def test_same_seed_same_values() -> None:
    first = [_gen(seed=3).object("Update") for _ in range(2)]
    assert first[0] == first[1]
    assert _gen(seed=4).object("Update") != first[0]


def test_value_expressions() -> None:
    gen = _gen()
    assert isinstance(gen.value(("Integer", "String"), hint="chat_id"), int)
    assert isinstance(gen.value("InputFile"), Upload)
    assert isinstance(gen.value(("InputFile", "String"), hint="photo"), str)
    assert gen.value("True") is True
    keyboard = gen.value("Array of Array of InlineKeyboardButton")
    assert keyboard == [[{"text": "text", "callback_data": "data"}]]
    with pytest.raises(KeyError):
        gen.value("NoSuchType")


def test_object_overrides() -> None:
    gen = _gen()
    sender = {"id": 42, "is_bot": False, "first_name": "Bob"}
    message = gen.object("Message", from_=sender, text="hello")
    assert message["from"] == sender
    assert message["text"] == "hello"
    member = gen.object("ChatMember")
    assert member["status"] in {
        "creator",
        "administrator",
        "member",
        "restricted",
        "left",
        "kicked",
    }


# -- results echo their parameters ------------------------------------------------------------


def test_send_message_echoes_its_parameters() -> None:
    bot = {"id": 7000000001, "is_bot": True, "first_name": "Bot", "username": "a_bot"}
    gen = _gen(bot_user=bot)
    markup = {"inline_keyboard": [[{"text": "ok", "callback_data": "ok"}]]}
    entities = [{"type": "bold", "offset": 0, "length": 2}]
    message = gen.result(
        "sendmessage",
        {"chat_id": -100500, "text": "hi", "reply_markup": markup, "entities": entities},
    )
    assert message["chat"]["id"] == -100500
    assert message["from"] == bot
    assert message["text"] == "hi"
    assert message["entities"] == entities
    assert message["reply_markup"] == markup
    other = gen.result("sendMessage", {"chat_id": 1, "text": "x"})
    assert other["message_id"] > message["message_id"]
    # A reply keyboard is not part of the message Telegram returns.
    reply_kb = {"keyboard": [[{"text": "a"}]]}
    assert "reply_markup" not in gen.result("sendMessage", {"chat_id": 1, "reply_markup": reply_kb})
    assert gen.result("getMe", {}) == bot


def test_edits_keep_their_message_and_inline_edits_return_true() -> None:
    gen = _gen()
    edited = gen.result("editMessageText", {"chat_id": 9, "message_id": 77, "text": "new"})
    assert (edited["message_id"], edited["text"], edited["edit_date"]) == (77, "new", NOW)
    assert gen.result("editMessageText", {"inline_message_id": "abc", "text": "x"}) is True
    forwarded = gen.result("forwardMessage", {"chat_id": 9, "from_chat_id": 8, "message_id": 77})
    assert forwarded["message_id"] != 77


def test_media_results_carry_their_content() -> None:
    gen = _gen()
    photo = gen.result("sendPhoto", {"chat_id": 1, "photo": "x", "caption": "look"})
    assert photo["photo"]
    assert photo["caption"] == "look"
    note = gen.result("sendVideoNote", {"chat_id": 1, "video_note": "x"})
    assert "video_note" in note
    location = gen.result("sendLocation", {"chat_id": 1, "latitude": 1.5, "longitude": 2.5})
    assert (location["location"]["latitude"], location["location"]["longitude"]) == (1.5, 2.5)
    poll = gen.result(
        "sendPoll", {"chat_id": 1, "question": "Q?", "options": [{"text": "a"}, {"text": "b"}]}
    )
    assert poll["poll"]["question"] == "Q?"
    assert [o["text"] for o in poll["poll"]["options"]] == ["a", "b"]
    # An enumerated field takes only a value its description names.
    quiz = gen.result("sendPoll", {"chat_id": 1, "question": "Q?", "type": "quiz"})
    assert quiz["poll"]["type"] == "quiz"
    odd = gen.result("sendPoll", {"chat_id": 1, "question": "Q?", "type": "banana"})
    assert odd["poll"]["type"] == "regular"
    media = [{"type": "photo", "media": "a"}, {"type": "video", "media": "b"}]
    album = gen.result("sendMediaGroup", {"chat_id": 1, "media": media})
    assert ["photo" in album[0], "video" in album[1]] == [True, True]
    assert album[0]["media_group_id"] == album[1]["media_group_id"]


def test_array_and_scalar_results() -> None:
    gen = _gen()
    ids = gen.result("copyMessages", {"chat_id": 1, "from_chat_id": 2, "message_ids": [4, 5, 6]})
    assert len(ids) == 3
    assert all(set(i) == {"message_id"} for i in ids)
    admins = gen.result("getChatAdministrators", {"chat_id": -100})
    assert admins[0]["status"] == "creator"
    member = gen.result("getChatMember", {"chat_id": -100, "user_id": 31})
    assert (member["status"], member["user"]["id"]) == ("member", 31)
    assert gen.result("exportChatInviteLink", {"chat_id": -100}).startswith("https://t.me/+")
    assert isinstance(gen.result("getChatMemberCount", {"chat_id": -100}), int)
    assert gen.result("setMyCommands", {"commands": []}) is True
    link = gen.result("createChatInviteLink", {"chat_id": -100, "name": "promo"})
    assert link["name"] == "promo"
    assert link["creator"] == gen.bot_user
    with pytest.raises(KeyError):
        gen.result("noSuchMethod", {})
