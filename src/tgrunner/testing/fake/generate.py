"""Valid values of any Bot API type, generated from the spec.

FakeTelegram answers every method that has no behaviour of its own with
``Generator.result(method, params)``: a value of the method's declared result type that the
clients of aiogram and python-telegram-bot accept (``tests/testing/test_generate.py`` checks every
type and every method), made plausible by echoing the request's parameters.

How a value is made:

- Only required fields are emitted, plus the few optional ones that bots and clients rely on
  (``Update.message``, ``Message.from``, a chat's title or first name, a button's
  ``callback_data``). Optional fields are never followed, so recursive types
  (``Message.reply_to_message``) stay finite.
- Discriminators are read from the field's description (``always "creator"``, ``must be
  photo``, ``one of "regular", ...``, ``Always 0.``), so every concrete subtype carries the
  constant its clients dispatch on.
- An abstract type becomes one of its concrete subtypes, chosen by a hash of the seed and the
  type's name: the same seed always gives the same choice. Subtypes that contain their abstract
  type again (rich text in rich text) are made only when asked for by name, and past a nesting
  depth of :data:`MAX_DEPTH` arrays are empty and abstract types take their simplest subtype, so
  types that are recursive through required fields stay shallow.
- A few fields that Bot API versions newer than the spec made required, and that current clients
  insist on, are added while the spec lacks them
  (:data:`~tgrunner.testing.fake.base.NEWER_REQUIRED_FIELDS`).
- Values are realistic for their field name: positive, 52-bit-safe ids; unix dates near now;
  ``file_id``-shaped strings; a chat ``type`` that matches the sign of its id.

A plan (the producers of a type's fields) is built once per type and cached, so generating a
value costs a few dict operations per field.
"""

from __future__ import annotations

import itertools
import random
import re
import string
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tgrunner.testing.botapi import Field, Spec, TypeDef, load_spec
from tgrunner.testing.fake.base import NEWER_REQUIRED_FIELDS, Upload

__all__ = ["MAX_DEPTH", "Generator"]

MAX_DEPTH = 8
"""Nesting depth past which arrays are generated empty and abstract types take a leaf subtype."""

Producer = Callable[[int], Any]
"""Makes one value; takes the current nesting depth."""

_PRIMITIVES = frozenset({"Integer", "Float", "String", "Boolean", "True", "InputFile"})
_ARRAY = "Array of "

# Optional fields emitted anyway: bots and dispatchers expect them (an Update with no payload
# makes aiogram's dispatcher raise; handlers read message.from_user; a button needs an action).
_ALSO_EMIT: dict[str, tuple[str, ...]] = {
    "Update": ("message",),
    "Message": ("from",),
    "InlineKeyboardButton": ("callback_data",),
}

# What a result of these methods most plausibly is, where the declared type is abstract.
_RESULT_SUBTYPES: dict[str, str] = {
    "getChatMember": "ChatMemberMember",
    "getChatAdministrators": "ChatMemberOwner",
    "getChatMenuButton": "MenuButtonDefault",
}

# Discriminators and enumerations, as the spec words them. Quotes may be straight or curly.
_Q = '["“”]'
_ALWAYS_STR = re.compile(rf"\balways {_Q}([^\"“”]+){_Q}", re.IGNORECASE)
_MUST_BE_WORD = re.compile(r"(?:^|, )must be ([a-z0-9_]+)\.?$")
_FIRST_OF = re.compile(
    rf"(?:one of|can be either|can be|either)\s*{_Q}([^\"“”]+){_Q}", re.IGNORECASE
)
_ALWAYS_INT = re.compile(r"^Always (-?\d+)\.")

_URLSAFE = string.ascii_letters + string.digits + "-_"
_FUTURE_DATE = 86_400


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _constant(field: Field) -> Any:
    """The one value a field may take, read from its description; None when it has no such."""
    desc = field.description
    if field.types == ("String",):
        for pattern in (_ALWAYS_STR, _MUST_BE_WORD, _FIRST_OF):
            found = pattern.search(desc)
            if found:
                return found.group(1)
    elif field.types == ("Integer",):
        found = _ALWAYS_INT.match(desc)
        if found:
            return int(found.group(1))
    return None


def _required_bool(field: Field) -> bool:
    # The scraped spec types the official "True" fields (ForceReply.force_reply,
    # ReplyKeyboardRemove.remove_keyboard) as Boolean; their descriptions, unlike those of real
    # flags, do not start with "True, if" / "Pass True", and clients insist on true there.
    desc = field.description
    return not (desc.startswith("True") or desc.startswith("Pass True"))


def _fix_chat(obj: dict[str, Any]) -> None:
    chat_id = obj.get("id")
    if not isinstance(chat_id, int):
        return
    if obj.get("type") != "channel" or chat_id > 0:
        obj["type"] = _chat_type(chat_id)
    if obj["type"] == "private":
        obj.setdefault("first_name", "Alice")
    else:
        obj.setdefault("title", "Test chat")


def _chat_type(chat_id: int) -> str:
    # Telegram's id ranges: users are positive, supergroups and channels are -100…, basic
    # groups are other negatives.
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


def _fix_message(obj: dict[str, Any]) -> None:
    sender, chat = obj.get("from"), obj.get("chat")
    if isinstance(sender, dict) and isinstance(chat, dict) and chat.get("type") == "private":
        chat["id"] = sender["id"]
        chat["first_name"] = sender.get("first_name", "Alice")


_FIXUPS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Chat": _fix_chat,
    "ChatFullInfo": _fix_chat,
    "Message": _fix_message,
}


def _always(value: Any) -> Callable[[int], Any]:
    """A field maker that ignores the depth and always gives ``value``."""

    def make(depth: int) -> Any:
        return value

    return make


class Generator:
    """Makes valid Bot API values of any type in ``spec`` (default: the shipped Bot API spec).

    ``seed`` (default 0) makes the output deterministic: the same seed and the same sequence of
    calls give the same values. ``bot_user`` (default: a generated bot) is the bot's own ``User``
    object, kept by reference and copied into results as their sender and as ``getMe``.
    ``clock`` (default ``time.time``) gives the unix time for dates.
    """

    def __init__(
        self,
        spec: Spec | None = None,
        *,
        seed: int = 0,
        bot_user: dict[str, Any] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.spec = spec or load_spec()
        self.seed = seed
        self._rng = random.Random(seed)
        self._clock = clock or time.time
        self._message_ids = itertools.count(1)
        self._update_ids = itertools.count(100_000_001)
        self._plans: dict[str, tuple[tuple[tuple[str, Producer], ...], Callable | None]] = {}
        self._producers: dict[tuple[tuple[str, ...], str], Producer] = {}
        self._reachable: dict[str, frozenset[str]] = {}
        # Kept by reference: the caller's state may rename its bot, and results should follow.
        self.bot_user: dict[str, Any] = bot_user if bot_user is not None else self._make_bot()

    # -- public API ------------------------------------------------------------------------

    def value(self, types: Sequence[str] | str, *, hint: str = "") -> Any:
        """A value of a type expression: one name (``"Message"``, ``"Array of Update"``) or a
        union (``("Integer", "String")``; the first member that is not ``InputFile`` is used).
        ``hint`` is a field name that makes the value realistic (``"date"``, ``"file_id"``).
        ``InputFile`` gives an :class:`~tgrunner.testing.fake.base.Upload`.
        """
        key = (types,) if isinstance(types, str) else tuple(types)
        return self._producer(key, hint)(0)

    def object(self, type_name: str, **overrides: Any) -> dict[str, Any]:
        """An object of ``type_name`` (an abstract type gives one of its concrete subtypes), then
        ``overrides`` set over it. A trailing underscore is dropped from an override's name, so
        ``from_=user`` sets ``from``. Raises ``KeyError`` for an unknown type."""
        td = self.spec.types[type_name]
        if td.subtypes:
            td = self.spec.types[self._pick(td, 0, objects_only=True)]
        obj = self._build(td.name, 0)
        for key, val in overrides.items():
            obj[key[:-1] if key.endswith("_") else key] = val
        return obj

    def result(self, method_name: str, params: Mapping[str, Any]) -> Any:
        """A valid result of ``method_name`` (matched case-insensitively) for ``params``.

        Parameters that mean a field of the result are echoed into it, so the result is
        plausible: ``chat_id`` becomes the message's ``chat``, ``text``, ``caption``, ``name``,
        ``title`` and the like are copied, ``sendPhoto`` gives a message with a ``photo``,
        ``copyMessages`` one ``MessageId`` per id. Methods that return ``Message`` or ``True``
        return ``True`` for an ``inline_message_id``. Raises ``KeyError`` for an unknown method.
        """
        method = self.spec.method(method_name)
        if method is None:
            raise KeyError(f"unknown Bot API method: {method_name!r}")
        name = method.name
        if name == "getMe":
            return dict(self.bot_user)
        returns = method.returns
        if len(returns) > 1:
            if params.get("inline_message_id"):
                return True
            returns = tuple(r for r in returns if r != "Boolean") or returns
        expr = returns[0]
        if expr in ("Boolean", "True"):
            return True
        if expr == "String":
            return self._string(_snake(name.removeprefix("get").removeprefix("export")))
        if expr == "Integer":
            return self._rng.randint(2, 50)
        if expr.startswith(_ARRAY):
            return self._array_result(name, expr[len(_ARRAY) :], params)
        return self._object_result(name, expr, params, 0)

    # -- plans -----------------------------------------------------------------------------

    def _producer(self, types: tuple[str, ...], hint: str) -> Producer:
        key = (types, hint)
        producer = self._producers.get(key)
        if producer is None:
            choices = [t for t in types if t != "InputFile"] or list(types)
            producer = self._compile(choices[0], hint)
            self._producers[key] = producer
        return producer

    def _compile(self, expr: str, hint: str) -> Producer:
        if expr.startswith(_ARRAY):
            inner = self._producer((expr[len(_ARRAY) :],), hint)
            return lambda depth: [] if depth >= MAX_DEPTH else [inner(depth + 1)]
        if expr == "Integer":
            return self._int_producer(hint)
        if expr == "Float":
            return self._float_producer(hint)
        if expr == "String":
            return lambda depth: self._string(hint)
        if expr == "Boolean":
            return lambda depth: False
        if expr == "True":
            return lambda depth: True
        if expr == "InputFile":
            return lambda depth: Upload("file.bin", "application/octet-stream", b"\x00" * 16)
        td = self.spec.types.get(expr)
        if td is None:
            raise KeyError(f"unknown Bot API type: {expr!r}")
        if td.subtypes:
            return lambda depth: self._producer((self._pick(td, depth),), hint)(depth)
        return lambda depth: self._build(expr, depth)

    def _plan(self, name: str) -> tuple[tuple[tuple[str, Producer], ...], Callable | None]:
        plan = self._plans.get(name)
        if plan is None:
            td = self.spec.types[name]
            also = _ALSO_EMIT.get(name, ())
            fields = []
            for field in td.fields:
                if field.required or field.name in also:
                    fields.append((field.name, self._field_producer(field)))
            known = {field.name for field in td.fields}
            for key, val in NEWER_REQUIRED_FIELDS.get(name, {}).items():
                if key not in known:
                    fields.append((key, _always(val)))
            plan = (tuple(fields), _FIXUPS.get(name))
            self._plans[name] = plan
        return plan

    def _field_producer(self, field: Field) -> Producer:
        const = _constant(field)
        if const is not None:
            return lambda depth: const
        if field.types == ("Boolean",):
            flag = _required_bool(field) if field.required else True
            return lambda depth: flag
        return self._producer(field.types, field.name)

    def _build(self, name: str, depth: int) -> dict[str, Any]:
        fields, fixup = self._plan(name)
        obj = {key: produce(depth + 1) for key, produce in fields}
        if fixup is not None:
            fixup(obj)
        return obj

    def _pick(self, td: TypeDef, depth: int, *, objects_only: bool = False) -> str:
        subtypes = td.subtypes
        if objects_only:
            subtypes = tuple(s for s in subtypes if s in self.spec.types) or subtypes
        if depth >= MAX_DEPTH:
            return min(subtypes, key=lambda s: len(self._reach(s)))
        # A subtype that holds its abstract type again (rich text inside rich text) is only made
        # when asked for by name: picked freely, it nests to the depth limit, and clients that
        # parse such unions by trying each member (pydantic) take exponential time over it.
        flat = tuple(s for s in subtypes if td.name not in self._reach(s)) or subtypes
        return flat[zlib.crc32(f"{self.seed}:{td.name}".encode()) % len(flat)]

    def _reach(self, expr: str) -> frozenset[str]:
        """The types a value of ``expr`` may contain, through the fields generated for it."""
        found = self._reachable.get(expr)
        if found is None:
            seen: set[str] = set()
            stack = [expr]
            while stack:
                name = stack.pop()
                while name.startswith(_ARRAY):
                    name = name.removeprefix(_ARRAY)
                td = self.spec.types.get(name)
                if td is None or name in seen:
                    continue
                seen.add(name)
                stack.extend(td.subtypes)
                also = _ALSO_EMIT.get(name, ())
                for field in td.fields:
                    if field.required or field.name in also:
                        stack.extend(field.types)
            found = self._reachable[expr] = frozenset(seen - {expr})
        return found

    # -- realistic primitives -------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _user_id(self) -> int:
        return self._rng.randint(100_000_000, 7_999_999_999)

    def _int_producer(self, hint: str) -> Producer:
        rng = self._rng
        if hint == "update_id":
            return lambda depth: next(self._update_ids)
        if hint.endswith("message_id"):
            return lambda depth: next(self._message_ids)
        if hint.endswith(("thread_id", "topic_id")):
            return lambda depth: rng.randint(2, 1000)
        if hint == "id" or hint.endswith(("user_id", "chat_id")):
            return lambda depth: self._user_id()
        if hint == "date" or hint.endswith("_date"):
            future = "expir" in hint or hint.startswith(("until", "next_"))
            return lambda depth: self._now() + (_FUTURE_DATE if future else 0)
        if hint == "file_size":
            return lambda depth: rng.randint(1_000, 1_000_000)
        if hint.endswith(("duration", "period")):
            number = 60
        elif hint.endswith("voter_count"):
            number = 0
        elif hint == "color" or hint.endswith("_color"):
            number = 0x3D8EB9
        elif hint.endswith("amount"):
            number = 100
        else:
            number = {"width": 512, "height": 512, "offset": 0}.get(hint, 1)
        return lambda depth: number

    def _float_producer(self, hint: str) -> Producer:
        value = {"latitude": 51.5074, "longitude": -0.1278}.get(hint, 1.0)
        return lambda depth: value

    def _token(self, size: int) -> str:
        return "".join(self._rng.choice(_URLSAFE) for _ in range(size))

    def _string(self, hint: str) -> str:
        # Shapes follow what real Telegram values look like, so code that inspects them
        # (length checks, prefixes, URL parsing) sees something plausible.
        if hint.endswith("file_unique_id"):
            return "AQAD" + self._token(12)
        if hint.endswith("file_id"):
            return "AgACAgIAAxkBAAI" + self._token(57)
        if hint == "id" or hint.endswith(("query_id", "custom_emoji_id", "chat_instance")):
            return str(self._rng.randint(10**17, 10**19 - 1))
        if hint.endswith("_id"):
            return self._token(24)
        if hint.endswith(("invite_link", "link")):
            return "https://t.me/+" + self._token(16)
        if hint == "url" or hint.endswith("_url"):
            return "https://example.com/" + self._token(8)
        if hint.endswith("token"):
            return f"{self._user_id()}:AA{self._token(33)}"
        if hint.endswith("username"):
            return "user_" + self._token(6).lower().replace("-", "x")
        return _STRINGS.get(hint, hint.replace("_", " ") or "text")

    def _make_bot(self) -> dict[str, Any]:
        return {
            "id": self._rng.randint(6_000_000_000, 8_499_999_999),
            "is_bot": True,
            "first_name": "Test Bot",
            "username": "test_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    # -- results ---------------------------------------------------------------------------

    def _chat(self, chat_id: Any) -> dict[str, Any]:
        if isinstance(chat_id, int) and not isinstance(chat_id, bool):
            chat: dict[str, Any] = {"id": chat_id, "type": _chat_type(chat_id)}
        elif isinstance(chat_id, str) and chat_id.startswith("@") and len(chat_id) > 1:
            # A stable id per username, in the supergroup/channel range.
            fake_id = -1_000_000_000_000 - zlib.crc32(chat_id.lower().encode()) % 10**9
            chat = {"id": fake_id, "type": "channel", "username": chat_id[1:]}
        else:
            chat = {"id": self._user_id(), "type": "private"}
        _fix_chat(chat)
        return chat

    def _object_result(
        self, method: str, type_name: str, params: Mapping[str, Any], index: int
    ) -> dict[str, Any]:
        td = self.spec.types[_RESULT_SUBTYPES.get(method, type_name)]
        if td.subtypes:
            td = self.spec.types[self._pick(td, 0, objects_only=True)]
        obj = self._build(td.name, 0)
        self._echo(method, td, obj, params)
        if td.name == "Message":
            self._message_content(method, td, obj, params, index)
        return obj

    def _array_result(self, method: str, item: str, params: Mapping[str, Any]) -> list[Any]:
        count = 1
        ids, media = params.get("message_ids"), params.get("media")
        if isinstance(ids, list) and ids:
            count = len(ids)
        elif item == "Message" and isinstance(media, list) and media:
            count = len(media)
        if item in _PRIMITIVES:
            return [self.value(item) for _ in range(count)]
        items = [self._object_result(method, item, params, i) for i in range(count)]
        if count > 1 and item == "Message":
            group = str(self._rng.randint(10**17, 10**18))
            for message in items:
                message["media_group_id"] = group
        return items

    def _echo(
        self, method: str, td: TypeDef, obj: dict[str, Any], params: Mapping[str, Any]
    ) -> None:
        """Copy into ``obj`` the parameters that name one of its fields with a fitting value."""
        edits = method.startswith(("edit", "stop", "setGameScore"))
        for field in td.fields:
            name = field.name
            if name == "chat" and "chat_id" in params:
                obj["chat"] = self._chat(params["chat_id"])
            elif name in ("from", "creator") and field.types == ("User",):
                obj[name] = dict(self.bot_user)
            elif name == "user" and field.types == ("User",) and "user_id" in params:
                user = obj.get("user") or self._build("User", 1)
                if self._fits(("Integer",), params["user_id"]):
                    user["id"] = params["user_id"]
                obj["user"] = user
            elif name == "message_id" and not edits:
                continue  # a new message gets a new id; only edits keep the one they name
            elif name in params and self._fits_field(field, params[name]):
                obj[name] = params[name]
        if td.name in ("Chat", "ChatFullInfo") and "chat_id" in params:
            obj.update(self._chat(params["chat_id"]))

    def _message_content(
        self,
        method: str,
        td: TypeDef,
        obj: dict[str, Any],
        params: Mapping[str, Any],
        index: int,
    ) -> None:
        """Give a sent or edited message the content its method implies (``sendPhoto`` →
        ``photo``, ``editMessageMedia`` → the new media's kind), echoing what fits."""
        content = None
        media = params.get("media")
        if isinstance(media, list) and index < len(media) and isinstance(media[index], dict):
            content = media[index].get("type")
        elif isinstance(media, dict):
            content = media.get("type")
        elif method.startswith("send"):
            content = _snake(method[4:])
        if method.startswith("edit"):
            obj["edit_date"] = self._now()
        if method == "sendPaidMedia":
            content = "paid_media"
        field = next((f for f in td.fields if f.name == content), None)
        if field is None or field.name in obj:
            return
        value = self._producer(field.types, field.name)(1)
        if isinstance(value, dict):
            self._overlay(field.types[0], value, params)
        obj[field.name] = value

    def _overlay(self, type_name: str, obj: dict[str, Any], params: Mapping[str, Any]) -> None:
        """Echo parameters into a nested content object: scalars by name (a location's
        coordinates, a poll's question), and lists of objects item by item (poll options)."""
        td = self.spec.types.get(type_name)
        if td is None or td.subtypes:
            return
        for field in td.fields:
            param = params.get(field.name)
            if param is None:
                continue
            if self._fits_field(field, param) and not isinstance(param, (dict, list)):
                obj[field.name] = param
            elif field.types[0].startswith(_ARRAY) and isinstance(param, list):
                item = field.types[0][len(_ARRAY) :]
                if item in self.spec.types and all(isinstance(p, dict) for p in param):
                    items = []
                    for given in param:
                        made = self._build(item, 2)
                        self._overlay(item, made, given)
                        items.append(made)
                    obj[field.name] = items

    def _fits_field(self, field: Field, value: Any) -> bool:
        """Whether ``value`` may be echoed into ``field``: it fits the field's type and, where
        the description fixes or enumerates the value (a discriminator), is one it names."""
        if not self._fits(field.types, value):
            return False
        const = _constant(field)
        if const is None or value == const:
            return True
        if not isinstance(value, str):
            return False
        return re.search(f"{_Q}{re.escape(value)}{_Q}", field.description) is not None

    def _fits(self, types: Sequence[str], value: Any) -> bool:
        """Whether ``value`` is a valid value of one of ``types`` (objects: every known key
        checked, required keys present), so echoing it cannot break a client's parser."""
        return any(self._fits_one(t, value) for t in types)

    def _fits_one(self, expr: str, value: Any) -> bool:
        if expr.startswith(_ARRAY):
            inner = expr[len(_ARRAY) :]
            return isinstance(value, list) and all(self._fits_one(inner, v) for v in value)
        if expr == "String":
            return isinstance(value, str)
        if expr == "Integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if expr == "Float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if expr in ("Boolean", "True"):
            return isinstance(value, bool)
        td = self.spec.types.get(expr)
        if td is None or not isinstance(value, dict):
            return False
        if td.subtypes:
            return any(self._fits_one(s, value) for s in td.subtypes)
        for field in td.fields:
            if field.name in value:
                if not self._fits(field.types, value[field.name]):
                    return False
            elif field.required:
                return False
        return True


_STRINGS: dict[str, str] = {
    "first_name": "Alice",
    "last_name": "Smith",
    "title": "Test chat",
    "text": "text",
    "emoji": "👍",
    "currency": "XTR",
    "language_code": "en",
    "mime_type": "application/octet-stream",
    "file_name": "file.bin",
    "file_path": "documents/file_0.bin",
    "phone_number": "+15550100000",
    "email": "user@example.com",
    "query": "query",
    "data": "data",
    "callback_data": "data",
    "name": "name",
}
