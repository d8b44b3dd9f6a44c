"""Check and coerce a method's parameters the way the Bot API server does.

``coerce_params(method, raw)`` takes the parameters of one request, as
:mod:`~tgrunner.testing.fake.params` read them, and returns them typed by the spec:

- Values arrive typed (a JSON body) or as ``str`` (query string, form, multipart text part) or
  as :class:`~tgrunner.testing.fake.base.Upload` (a multipart file part). Like the reference
  server, which sees every value as a string, an empty string counts as absent, a JSON number
  given for a ``String`` becomes its text, and an upload counts only where a file may go.
- ``Integer`` and ``Float`` are parsed strictly: ``"12abc"`` is an error here, where the
  reference server reads the leading digits. A test should see such a bug.
- ``Boolean`` is true for ``"true"``, ``"yes"`` and ``"1"`` in any case, and false for anything
  else, exactly as the reference server reads it; it never fails.
- ``Integer or String`` (``chat_id``) stays an ``int`` when it looks like one, else a string such
  as ``"@channel"``.
- Array and object types are decoded from their JSON text with orjson (a typed list or dict from
  a JSON body is kept), and must have the right shape. Their contents are not checked.
- Unknown parameters are dropped, as Telegram ignores them; names are case-sensitive.
- ``getUpdates`` clamps ``limit`` to 1–100 and ``timeout`` to 0–50, as the reference server
  does, instead of failing.

Errors raise :class:`~tgrunner.testing.fake.base.ApiError` (400) with Telegram's own wording:
the table below, taken from the reference server. Deliberate difference: the reference server
logs and ignores ``entities`` that are not valid JSON; here they fail with the text it logs,
because a bot that sends broken entities has a bug.

Per-method plans (a coercer per parameter, the required ones, the extra checks) are built on
first use and cached, so a call costs one dict lookup per parameter given.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from tgrunner.testing.botapi import Field, Method
from tgrunner.testing.fake.base import ApiError, Upload

__all__ = ["coerce_params"]

# Telegram's error descriptions. Sources, in tdlib/telegram-bot-api:
# telegram-bot-api/Client.cpp (check_chat, get_required_string_arg, get_message_id(s),
# get_user_id(s), get_input_message_text, get_formatted_text, get_location, the
# process_send_*_query functions and the JSON readers named below), whose internal
# messages the server sends as "Bad Request: " + the message with its first letter
# lowercased (Client::fail_query_with_error); and, for what TDLib itself answers,
# tdlib/td td/telegram/MessageEntity.cpp (fix_formatted_text: "Text must be non-empty") and
# td/telegram/MessagesManager.cpp (MESSAGE_TOO_LONG -> "Message is too long",
# MEDIA_CAPTION_TOO_LONG -> "Message caption is too long"). answerCallbackQuery passes the
# server's MESSAGE_TOO_LONG through unchanged.
_BAD = "Bad Request: "
CHAT_ID_EMPTY = _BAD + "chat_id is empty"
TEXT_EMPTY = _BAD + "message text is empty"
TEXT_BLANK = _BAD + "text must be non-empty"
TEXT_TOO_LONG_BYTES = _BAD + "text is too long"
MESSAGE_TOO_LONG = _BAD + "message is too long"
CAPTION_TOO_LONG = _BAD + "message caption is too long"
CALLBACK_TEXT_TOO_LONG = _BAD + "MESSAGE_TOO_LONG"
MESSAGE_ID_MISSING = _BAD + "message identifier is not specified"
PARAMETER_REQUIRED = _BAD + 'parameter "{}" is required'
INVALID_VALUE = _BAD + "invalid {} specified"
CANT_PARSE = _BAD + "can't parse {} JSON object"

_MISSING: dict[str, str] = {
    "chat_id": CHAT_ID_EMPTY,
    "text": TEXT_EMPTY,
    "message_id": MESSAGE_ID_MISSING,
    "inline_message_id": MESSAGE_ID_MISSING,
    "message_ids": _BAD + "message identifiers are not specified",
    "user_ids": _BAD + "user identifiers are not specified",
    "user_id": INVALID_VALUE.format("user_id"),
    "latitude": _BAD + "latitude is empty",
    "longitude": _BAD + "longitude is empty",
    "sticker_set_name": _BAD + "sticker_set_name is empty",
}
_MISSING_BY_METHOD: dict[tuple[str, str], str] = {
    ("deleteMessage", "chat_id"): _BAD + "chat identifier is not specified",
}
_CHAT_ID_FIRST = frozenset({"deleteMessage"})
# sendPhoto without photo: "there is no photo in the request", and so on for each media kind.
_MEDIA_KINDS: tuple[str, ...] = ("animation", "audio", "document", "live_photo", "photo")
_MEDIA_KINDS += ("sticker", "video", "video_note", "voice")

# JSON that does not parse: (method, field) first, then field.
_CANT_PARSE: dict[str, str] = {
    "reply_markup": "can't parse reply keyboard markup JSON object",
    "reply_parameters": "can't parse reply parameters JSON object",
    "link_preview_options": "can't parse link preview options JSON object",
    "suggested_post_parameters": "can't parse suggested post parameters JSON object",
    "entities": "can't parse entities JSON object",
    "permissions": "can't parse permissions JSON object",
    "commands": "can't parse commands JSON object",
    "scope": "can't parse BotCommandScope JSON object",
    "menu_button": "can't parse menu button JSON object",
    "rights": "can't parse ChatAdministratorRights JSON object",
    "mask_position": "can't parse mask position JSON object",
    "emoji_list": "can't parse emoji list JSON array",
    "sticker": "can't parse sticker JSON object",
    "stickers": "can't parse stickers JSON object",
    "errors": "can't parse errors JSON object",
    "prices": "can't parse prices JSON object",
    "shipping_options": "can't parse shipping options JSON object",
    "options": "can't parse options JSON object",
    "reaction": "can't parse reaction types JSON object",
    "areas": "can't parse story areas JSON object",
    "photo": "can't parse photo JSON object",
    "content": "can't parse story content JSON object",
    "accepted_gift_types": "can't parse accepted gift types JSON object",
    "checklist": "can't parse InputChecklist JSON object",
    "keywords": "can't parse keywords JSON object",
    "custom_emoji_ids": "can't parse custom emoji identifiers JSON object",
    "correct_option_ids": "can't parse correct option identifiers JSON object",
    "explanation_media": "can't parse InputPollMedia JSON object",
    "results": "can't parse JSON encoded inline query results: {}",
    "result": "can't parse JSON encoded web view query results {}",
}
_CANT_PARSE_BY_METHOD: dict[tuple[str, str], str] = {
    ("sendMediaGroup", "media"): "can't parse media JSON object",
    ("editMessageMedia", "media"): "can't parse input media JSON object",
    ("sendPaidMedia", "media"): "can't parse paid media JSON object",
    ("sendPoll", "media"): "can't parse InputPollMedia JSON object",
    ("answerInlineQuery", "button"): "can't parse inline query results button JSON object",
    ("savePreparedKeyboardButton", "button"): "can't parse keyboard button JSON object",
}
# JSON of the wrong shape (an array where an object goes, or the reverse).
_WRONG_SHAPE: dict[str, str] = {
    "reply_markup": "object expected as reply markup",
    "reply_parameters": "object expected as reply parameters",
    "link_preview_options": "object expected as link preview options",
    "suggested_post_parameters": "object expected as suggested post parameters",
    "permissions": "object expected as permissions",
    "photo": "object expected as profile photo",
    "content": "object expected as story content",
    "accepted_gift_types": "object expected as accepted gift types",
    "message_ids": "expected an Array of message identifiers",
    "commands": "expected an Array of BotCommand",
    "reaction": "expected an Array of ReactionType",
    "stickers": "expected an Array of InputSticker",
    "areas": "expected an Array of InputStoryArea",
    "errors": "expected an Array of PassportElementError",
    "prices": "expected an Array of labeled prices",
    "shipping_options": "expected an Array of shipping options",
    "suggested_tip_amounts": "expected an Array of suggested tip amounts",
    "custom_emoji_ids": "expected an Array of custom emoji identifiers",
    "correct_option_ids": "expected an Array of correct option identifiers",
    "results": "expected an Array of inline query results",
    "keywords": 'field "keywords" must be an Array',
    "emoji_list": "expected an Array of string",
}
_WRONG_SHAPE_BY_METHOD: dict[tuple[str, str], str] = {
    ("sendMediaGroup", "media"): "expected an Array of InputMedia",
    ("sendPaidMedia", "media"): "expected an Array of InputPaidMedia",
}

# Limits the reference server enforces itself (Client.cpp: 1 << 15 bytes of text; getUpdates'
# limit and LONG_POLL_MAX_TIMEOUT from Client.h) or gets from Telegram.
_TEXT_MAX_BYTES = 1 << 15
_TEXT_MAX = 4096
_CAPTION_MAX = 1024
_CALLBACK_TEXT_MAX = 200
_CLAMPS: dict[str, dict[str, tuple[int, int]]] = {
    "getUpdates": {"limit": (1, 100), "timeout": (0, 50)},
}

_ABSENT: Any = object()
_INT = re.compile(r"[+-]?\d{1,19}")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT64 = (-(1 << 63), (1 << 63) - 1)
_TRUE = frozenset({"true", "yes", "1"})

Coercer = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Plan:
    method: Method
    coercers: dict[str, Coercer]
    checks: tuple[Callable[[dict[str, Any]], None], ...]
    required: tuple[tuple[str, str], ...]


_plans: dict[str, _Plan] = {}


def coerce_params(method: Method, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of ``raw`` that ``method`` knows, typed; raises ``ApiError(400, ...)``
    with Telegram's description when one is missing or invalid."""
    plan = _plans.get(method.name)
    if plan is None or plan.method is not method:
        plan = _plans[method.name] = _build_plan(method)
    out: dict[str, Any] = {}
    coercers = plan.coercers
    for key, value in raw.items():
        coerce = coercers.get(key)
        # A JSON null is no value, as an empty string is.
        if coerce is not None and value is not None:
            value = coerce(value)
            if value is not _ABSENT:
                out[key] = value
    for check in plan.checks:
        check(out)
    for name, message in plan.required:
        if name not in out:
            raise ApiError(400, message)
    return out


# -- plans -----------------------------------------------------------------------------------


def _build_plan(method: Method) -> _Plan:
    coercers = {f.name: _coercer(method.name, f) for f in method.fields}
    required = [
        (f.name, _missing_message(method.name, f.name)) for f in method.fields if f.required
    ]
    # The reference server parses a request's content first and resolves the chat last, so a
    # request missing both its text and its chat_id hears about the text. deleteMessage is the
    # exception: it checks chat_id first.
    if method.name not in _CHAT_ID_FIRST:
        required.sort(key=lambda item: item[0] == "chat_id")
    return _Plan(method, coercers, _checks(method), tuple(required))


def _missing_message(method: str, name: str) -> str:
    message = _MISSING_BY_METHOD.get((method, name)) or _MISSING.get(name)
    if message:
        return message
    if name in _MEDIA_KINDS and method == "send" + name.title().replace("_", ""):
        return _BAD + f"there is no {name.replace('_', ' ')} in the request"
    if method == "sendLivePhoto" and name == "photo":
        return _BAD + "there is no photo in the request"
    return PARAMETER_REQUIRED.format(name)


def _coercer(method: str, field: Field) -> Coercer:
    types, name = field.types, field.name
    if types == ("Integer",):
        return lambda value: _to_int(value, name)
    if types == ("Float",):
        return lambda value: _to_float(value, name)
    if types in (("Boolean",), ("True",)):
        return _to_bool
    if types == ("String",):
        return _to_str
    if types == ("Integer", "String"):
        return _to_chat_id
    if types == ("InputFile", "String"):
        return lambda value: value if isinstance(value, Upload) else _to_str(value)
    if types == ("InputFile",):
        return lambda value: value if isinstance(value, Upload) else _ABSENT
    want_list = all(t.startswith("Array of ") for t in types)
    parse_error = _BAD + (
        _CANT_PARSE_BY_METHOD.get((method, name))
        or _CANT_PARSE.get(name)
        or (_CANT_PARSE["entities"] if name.endswith("entities") else None)
        or CANT_PARSE.format(name).removeprefix(_BAD)
    )
    shape_error = _BAD + (
        _WRONG_SHAPE_BY_METHOD.get((method, name))
        or _WRONG_SHAPE.get(name)
        or parse_error.removeprefix(_BAD).replace("{}", "").rstrip(": ")
    )
    # A broken allowed_updates is ignored by the reference server, which then keeps its
    # previous setting: pass the raw value on and let the state decide.
    lenient = name == "allowed_updates"
    return lambda value: _to_json(value, want_list, parse_error, shape_error, lenient)


def _checks(method: Method) -> tuple[Callable[[dict[str, Any]], None], ...]:
    checks: list[Callable[[dict[str, Any]], None]] = []
    name, fields = method.name, method.by_name
    if name in ("sendMessage", "editMessageText"):
        checks.append(_check_text)
    if name == "editMessageText":
        checks.append(_check_edit_has_text)
    if name == "answerCallbackQuery":
        checks.append(_check_callback_text)
    caption = fields.get("caption")
    if caption is not None and f"0-{_CAPTION_MAX} characters" in caption.description:
        checks.append(_check_caption)
    if {"chat_id", "message_id", "inline_message_id"} <= fields.keys():
        checks.append(_check_message_target)
    for key, (low, high) in _CLAMPS.get(name, {}).items():
        checks.append(_clamp(key, low, high))
    return tuple(checks)


# -- coercers --------------------------------------------------------------------------------


def _to_int(value: Any, name: str) -> Any:
    if isinstance(value, str):
        if not value:
            return _ABSENT
        if _INT.fullmatch(value):
            number = int(value)
            if _INT64[0] <= number <= _INT64[1]:
                return number
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    elif isinstance(value, Upload):
        return _ABSENT
    raise ApiError(400, INVALID_VALUE.format(name))


def _to_float(value: Any, name: str) -> Any:
    if isinstance(value, str):
        if not value:
            return _ABSENT
        if _FLOAT.fullmatch(value):
            return float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, Upload):
        return _ABSENT
    raise ApiError(400, INVALID_VALUE.format(name))


def _to_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, Upload):
        return _ABSENT
    if not isinstance(value, str):
        value = _as_text(value)
    if not value:
        return _ABSENT
    return value.strip().lower() in _TRUE


def _to_str(value: Any) -> Any:
    if isinstance(value, str):
        return value or _ABSENT
    if isinstance(value, Upload):
        return _ABSENT
    return _as_text(value)


def _to_chat_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    value = _to_str(value)
    if value is not _ABSENT and _INT.fullmatch(value):
        return int(value)
    return value


def _as_text(value: Any) -> str:
    """What the reference server sees for a typed JSON value: its JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


def _to_json(value: Any, want_list: bool, parse_error: str, shape_error: str, lenient: bool) -> Any:
    if isinstance(value, str):
        if not value:
            return _ABSENT
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            if lenient:
                return value
            raise ApiError(400, parse_error.replace("{}", str(exc))) from None
    elif isinstance(value, Upload):
        return _ABSENT
    if isinstance(value, list if want_list else dict) or lenient:
        return value
    raise ApiError(400, shape_error)


# -- checks ----------------------------------------------------------------------------------


def _visible_length(text: str, parse_mode: Any) -> int:
    """Length of ``text`` in UTF-16 code units, as Telegram counts, after trimming and an
    approximate removal of the markup of ``parse_mode``. The approximation removes at least as
    much as Telegram would, so it can pass a text Telegram rejects, but never rejects one
    Telegram passes."""
    text = text.strip()
    mode = parse_mode.lower() if isinstance(parse_mode, str) else ""
    if mode == "html":
        text = html.unescape(re.sub(r"<[^>]*>", "", text))
    elif mode in ("markdown", "markdownv2"):
        text = re.sub(r"[*_~|`\[\]\\]", "", re.sub(r"\]\([^)]*\)", "", text))
    if len(text) * 2 <= _TEXT_MAX:
        return len(text)  # fast path: no more than 2 UTF-16 units per code point
    return len(text.encode("utf-16-le")) // 2


def _check_text(params: dict[str, Any]) -> None:
    text = params.get("text")
    if text is None:
        return
    if len(text) > _TEXT_MAX_BYTES // 4 and len(text.encode()) > _TEXT_MAX_BYTES:
        raise ApiError(400, TEXT_TOO_LONG_BYTES)
    # Blankness is judged on the raw text: markup removal is approximate, and an escaped
    # markup character is visible text.
    if not text.strip():
        raise ApiError(400, TEXT_BLANK)
    if _visible_length(text, params.get("parse_mode")) > _TEXT_MAX:
        raise ApiError(400, MESSAGE_TOO_LONG)


def _check_edit_has_text(params: dict[str, Any]) -> None:
    if "text" not in params and "rich_message" not in params:
        raise ApiError(400, TEXT_EMPTY)


def _check_caption(params: dict[str, Any]) -> None:
    caption = params.get("caption")
    if caption is not None and _visible_length(caption, params.get("parse_mode")) > _CAPTION_MAX:
        raise ApiError(400, CAPTION_TOO_LONG)


def _check_callback_text(params: dict[str, Any]) -> None:
    text = params.get("text")
    if text is not None and len(text.encode("utf-16-le")) // 2 > _CALLBACK_TEXT_MAX:
        raise ApiError(400, CALLBACK_TEXT_TOO_LONG)


def _check_message_target(params: dict[str, Any]) -> None:
    # Methods that edit either a chat's message or an inline message (Client.cpp: an empty
    # chat_id and no message_id mean "inline", which then needs inline_message_id).
    if "inline_message_id" in params:
        return
    if "chat_id" in params:
        if "message_id" not in params:
            raise ApiError(400, MESSAGE_ID_MISSING)
    elif "message_id" in params:
        raise ApiError(400, CHAT_ID_EMPTY)
    else:
        raise ApiError(400, MESSAGE_ID_MISSING)


def _clamp(key: str, low: int, high: int) -> Callable[[dict[str, Any]], None]:
    def check(params: dict[str, Any]) -> None:
        if key in params:
            params[key] = min(max(params[key], low), high)

    return check
