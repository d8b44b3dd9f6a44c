"""coerce_params types each parameter by the spec and fails with Telegram's own descriptions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tgrunner.testing.botapi import load_spec
from tgrunner.testing.fake import validate
from tgrunner.testing.fake.base import ApiError, Upload
from tgrunner.testing.fake.generate import Generator
from tgrunner.testing.fake.validate import coerce_params

SPEC = load_spec()
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | INT64
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def coerce(method: str, **raw: Any) -> dict[str, Any]:
    return coerce_params(SPEC.methods[method], raw)


def error(method: str, **raw: Any) -> str:
    with pytest.raises(ApiError) as caught:
        coerce(method, **raw)
    assert caught.value.code == 400
    return caught.value.description


# -- coercion --------------------------------------------------------------------------------


def test_strings_become_typed_values() -> None:
    params = coerce(
        "sendMessage",
        chat_id="-1001234567890",
        text="hi",
        message_thread_id="17",
        disable_notification="True",
        protect_content="0",
        reply_markup='{"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}',
        entities='[{"type": "bold", "offset": 0, "length": 2}]',
        link_preview_options='{"is_disabled": true}',
    )
    assert params == {
        "chat_id": -1001234567890,
        "text": "hi",
        "message_thread_id": 17,
        "disable_notification": True,
        "protect_content": False,
        "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]},
        "entities": [{"type": "bold", "offset": 0, "length": 2}],
        "link_preview_options": {"is_disabled": True},
    }


def test_typed_json_values_are_kept() -> None:
    markup = {"inline_keyboard": []}
    params = coerce("sendMessage", chat_id=5, text="x", reply_markup=markup, disable_notification=1)
    assert params == {
        "chat_id": 5,
        "text": "x",
        "reply_markup": markup,
        "disable_notification": True,
    }


def test_chat_id_keeps_usernames() -> None:
    assert coerce("sendMessage", chat_id="@news", text="x")["chat_id"] == "@news"
    assert coerce("sendMessage", chat_id="+42", text="x")["chat_id"] == 42
    assert coerce("sendMessage", chat_id=42.0, text="x")["chat_id"] == 42


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("True", True),
        (" YES ", True),
        ("1", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("anything", False),
        (True, True),
        (False, False),
    ],
)
def test_booleans_read_as_the_server_reads_them(raw: Any, expected: bool) -> None:
    assert coerce("sendMessage", chat_id=1, text="x", disable_notification=raw) == {
        "chat_id": 1,
        "text": "x",
        "disable_notification": expected,
    }


def test_floats() -> None:
    params = coerce("sendLocation", chat_id=1, latitude="51.5", longitude=-0.12)
    assert params == {"chat_id": 1, "latitude": 51.5, "longitude": -0.12}
    assert error("sendLocation", chat_id=1, latitude="1.5", longitude="east") == (
        "Bad Request: invalid longitude specified"
    )
    assert error("sendLocation", chat_id=1, latitude="nan", longitude=1) == (
        "Bad Request: invalid latitude specified"
    )


def test_files() -> None:
    upload = Upload("cat.jpg", "image/jpeg", b"\xff\xd8")
    assert coerce("sendPhoto", chat_id=1, photo=upload)["photo"] is upload
    assert coerce("sendPhoto", chat_id=1, photo="AgACAgIAAx")["photo"] == "AgACAgIAAx"
    # An upload where no file may go is not a value, as in the reference server.
    assert "caption" not in coerce("sendPhoto", chat_id=1, photo="x", caption=upload)
    assert (
        coerce("setWebhook", url="https://a.example", certificate=upload)["certificate"] is upload
    )
    assert "certificate" not in coerce("setWebhook", url="https://a.example", certificate="x")


def test_unknown_empty_and_null_parameters_are_dropped() -> None:
    params = coerce(
        "sendMessage", chat_id=1, text="x", colour="red", Text="y", parse_mode="", reply_markup=None
    )
    assert params == {"chat_id": 1, "text": "x"}
    # Names are case-sensitive: "Chat_id" is not chat_id.
    assert error("sendMessage", Chat_id=1, text="x") == "Bad Request: chat_id is empty"


def test_scalars_given_for_strings_become_their_text() -> None:
    params = coerce("sendMessage", chat_id=1, text=123, parse_mode=True)
    assert (params["text"], params["parse_mode"]) == ("123", "true")


def test_get_updates_clamps_instead_of_failing() -> None:
    assert coerce("getUpdates", limit="1000", timeout="90") == {"limit": 100, "timeout": 50}
    assert coerce("getUpdates", limit=0, timeout=-1, offset="-5") == {
        "limit": 1,
        "timeout": 0,
        "offset": -5,
    }


def test_broken_allowed_updates_are_left_to_the_state() -> None:
    assert coerce("getUpdates", allowed_updates='["message"]') == {"allowed_updates": ["message"]}
    assert coerce("getUpdates", allowed_updates="message") == {"allowed_updates": "message"}


# -- Telegram's errors -----------------------------------------------------------------------

LONG = "a" * 4097


@pytest.mark.parametrize(
    ("method", "raw", "description"),
    [
        ("sendMessage", {"text": "x"}, "Bad Request: chat_id is empty"),
        ("sendMessage", {"chat_id": 1}, "Bad Request: message text is empty"),
        ("sendMessage", {"chat_id": 1, "text": ""}, "Bad Request: message text is empty"),
        ("sendMessage", {}, "Bad Request: message text is empty"),
        ("sendMessage", {"chat_id": 1, "text": " \n "}, "Bad Request: text must be non-empty"),
        ("sendMessage", {"chat_id": 1, "text": LONG}, "Bad Request: message is too long"),
        ("sendMessage", {"chat_id": 1, "text": "😀" * 2049}, "Bad Request: message is too long"),
        ("sendMessage", {"chat_id": 1, "text": "é" * 16385}, "Bad Request: text is too long"),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "reply_markup": "{"},
            "Bad Request: can't parse reply keyboard markup JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "reply_markup": "[]"},
            "Bad Request: object expected as reply markup",
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "entities": "[{"},
            "Bad Request: can't parse entities JSON object",
        ),
        (
            "sendPhoto",
            {"chat_id": 1, "photo": "x", "caption_entities": "nope"},
            "Bad Request: can't parse entities JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "reply_parameters": "x"},
            "Bad Request: can't parse reply parameters JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "message_thread_id": "12abc"},
            "Bad Request: invalid message_thread_id specified",
        ),
        (
            "sendMessage",
            {"chat_id": 1, "text": "x", "message_thread_id": 1.5},
            "Bad Request: invalid message_thread_id specified",
        ),
        ("sendPhoto", {"chat_id": 1}, "Bad Request: there is no photo in the request"),
        ("sendVideoNote", {"chat_id": 1}, "Bad Request: there is no video note in the request"),
        (
            "sendLivePhoto",
            {"chat_id": 1, "live_photo": "x"},
            "Bad Request: there is no photo in the request",
        ),
        (
            "sendPhoto",
            {"chat_id": 1, "photo": "x", "caption": "c" * 1025},
            "Bad Request: message caption is too long",
        ),
        ("sendLocation", {"chat_id": 1, "longitude": 1}, "Bad Request: latitude is empty"),
        ("banChatMember", {"chat_id": 1}, "Bad Request: invalid user_id specified"),
        ("banChatMember", {"chat_id": 1, "user_id": "x"}, "Bad Request: invalid user_id specified"),
        ("deleteMessage", {"chat_id": 1}, "Bad Request: message identifier is not specified"),
        ("deleteMessage", {}, "Bad Request: chat identifier is not specified"),
        ("deleteMessages", {"chat_id": 1}, "Bad Request: message identifiers are not specified"),
        (
            "deleteMessages",
            {"chat_id": 1, "message_ids": "{}"},
            "Bad Request: expected an Array of message identifiers",
        ),
        ("editMessageText", {"chat_id": 1, "message_id": 2}, "Bad Request: message text is empty"),
        ("editMessageText", {"text": "x"}, "Bad Request: message identifier is not specified"),
        (
            "editMessageText",
            {"text": "x", "chat_id": 1},
            "Bad Request: message identifier is not specified",
        ),
        ("editMessageText", {"text": "x", "message_id": 2}, "Bad Request: chat_id is empty"),
        (
            "answerCallbackQuery",
            {"callback_query_id": "1", "text": "x" * 201},
            "Bad Request: MESSAGE_TOO_LONG",
        ),
        ("answerCallbackQuery", {}, 'Bad Request: parameter "callback_query_id" is required'),
        (
            "sendMediaGroup",
            {"chat_id": 1, "media": "{"},
            "Bad Request: can't parse media JSON object",
        ),
        (
            "sendMediaGroup",
            {"chat_id": 1, "media": "{}"},
            "Bad Request: expected an Array of InputMedia",
        ),
        (
            "editMessageMedia",
            {"chat_id": 1, "message_id": 1, "media": "["},
            "Bad Request: can't parse input media JSON object",
        ),
        ("setMyCommands", {"commands": "{}"}, "Bad Request: expected an Array of BotCommand"),
        (
            "setMyCommands",
            {"commands": "[", "scope": "{"},
            "Bad Request: can't parse commands JSON object",
        ),
        (
            "restrictChatMember",
            {"chat_id": 1, "user_id": 2, "permissions": 7},
            "Bad Request: object expected as permissions",
        ),
        ("getMyCommands", {"scope": "{"}, "Bad Request: can't parse BotCommandScope JSON object"),
        (
            "sendPoll",
            {"chat_id": 1, "question": "q", "options": "{"},
            "Bad Request: can't parse options JSON object",
        ),
        ("setChatPermissions", {"chat_id": 1}, 'Bad Request: parameter "permissions" is required'),
    ],
)
def test_errors_use_telegrams_descriptions(
    method: str, raw: dict[str, Any], description: str
) -> None:
    assert error(method, **raw) == description


def test_lengths_are_counted_as_telegram_counts() -> None:
    assert coerce("sendMessage", chat_id=1, text="a" * 4096)["text"] == "a" * 4096
    # Surrounding whitespace is trimmed before counting.
    assert coerce("sendMessage", chat_id=1, text=" " * 10 + "a" * 4096 + "\n")
    # Markup is not counted: a 4096-character text in bold fits.
    assert coerce("sendMessage", chat_id=1, text=f"<b>{'a' * 4096}</b>", parse_mode="HTML")
    assert coerce("sendMessage", chat_id=1, text=f"*{'a' * 4096}*", parse_mode="MarkdownV2")
    # An escaped markup character is text, not blank.
    assert coerce("sendMessage", chat_id=1, text="\\*", parse_mode="MarkdownV2")
    assert coerce("answerCallbackQuery", callback_query_id="1", text="x" * 200)
    assert coerce("sendPhoto", chat_id=1, photo="x", caption="c" * 1024)


# -- every method accepts what the generator makes --------------------------------------------


def _as_form(value: Any) -> Any:
    """How a form or query-string client sends a value: text, or JSON text for structures."""
    if isinstance(value, Upload):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return orjson.dumps(value).decode()
    return str(value)


@pytest.mark.parametrize("method_name", sorted(SPEC.methods))
def test_generated_parameters_round_trip(method_name: str) -> None:
    method = SPEC.methods[method_name]
    gen = Generator(seed=5)
    params = {f.name: gen.value(f.types, hint=f.name) for f in method.fields}
    typed = coerce_params(method, params)
    assert typed == params
    assert coerce_params(method, {k: _as_form(v) for k, v in params.items()}) == params


# -- properties ------------------------------------------------------------------------------


@given(INT64)
def test_any_int_round_trips_through_its_text(number: int) -> None:
    params = coerce("sendMessage", chat_id=str(number), text="x", message_thread_id=str(number))
    assert params["chat_id"] == number
    assert params["message_thread_id"] == number


@given(st.lists(JSON, max_size=5))
def test_any_json_array_round_trips_through_its_text(value: list[Any]) -> None:
    params = coerce("sendMessage", chat_id=1, text="x", entities=orjson.dumps(value).decode())
    assert params["entities"] == value


@given(st.text(max_size=20))
def test_any_boolean_text_reads_as_the_server_reads_it(text: str) -> None:
    params = coerce("sendMessage", chat_id=1, text="x", disable_notification=text)
    if text:
        assert params["disable_notification"] is (text.strip().lower() in ("true", "yes", "1"))
    else:
        assert "disable_notification" not in params


# -- the plan --------------------------------------------------------------------------------


def test_plans_are_built_once_per_method() -> None:
    method = SPEC.methods["sendMessage"]
    coerce_params(method, {"chat_id": 1, "text": "x"})
    plan = validate._plans["sendMessage"]
    coerce_params(method, {"chat_id": 2, "text": "y"})
    assert validate._plans["sendMessage"] is plan


def test_message_tables_name_real_parameters() -> None:
    json_params = {
        f.name
        for m in SPEC.methods.values()
        for f in m.fields
        if all(t.startswith("Array of ") or (t in SPEC.types and t != "InputFile") for t in f.types)
    }
    for table in (validate._CANT_PARSE, validate._WRONG_SHAPE):
        assert set(table) <= json_params, set(table) - json_params
    for table in (validate._CANT_PARSE_BY_METHOD, validate._WRONG_SHAPE_BY_METHOD):
        for method, name in table:
            assert name in SPEC.methods[method].by_name, (method, name)
    for method, name in validate._MISSING_BY_METHOD:
        assert SPEC.methods[method].by_name[name].required
