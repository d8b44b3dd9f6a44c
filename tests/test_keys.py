"""Ordering keys for every update kind of the shipped Bot API spec.

Updates are built from the spec itself: every required field gets a value of its declared
type, and every integer is distinct. So a key taken from the wrong field (the sender instead of
the chat, ``user_chat_id`` instead of ``chat.id``) shows up as a wrong number.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tgrunner.keys import chat_and_user_keys, default_keys
from tgrunner.testing.botapi import load_spec

SPEC = load_spec()
KINDS = SPEC.update_kinds()

# kind -> (key prefix, path of the id inside update[kind], optional fields to fill in).
# A kind missing here fails test_every_kind_has_a_case: add its expected key when the spec
# grows.
EXPECTED: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "message": ("c", ("chat", "id"), ("from",)),
    "edited_message": ("c", ("chat", "id"), ("from",)),
    "channel_post": ("c", ("chat", "id"), ()),
    "edited_channel_post": ("c", ("chat", "id"), ()),
    "business_connection": ("c", ("user_chat_id",), ()),
    "business_message": ("c", ("chat", "id"), ("from",)),
    "edited_business_message": ("c", ("chat", "id"), ("from",)),
    "deleted_business_messages": ("c", ("chat", "id"), ()),
    "guest_message": ("c", ("chat", "id"), ("from",)),
    "message_reaction": ("c", ("chat", "id"), ("user",)),
    "message_reaction_count": ("c", ("chat", "id"), ()),
    "inline_query": ("u", ("from", "id"), ()),
    "chosen_inline_result": ("u", ("from", "id"), ()),
    "callback_query": ("c", ("message", "chat", "id"), ("message",)),
    "shipping_query": ("u", ("from", "id"), ()),
    "pre_checkout_query": ("u", ("from", "id"), ()),
    "purchased_paid_media": ("u", ("from", "id"), ()),
    "poll": ("p", ("id",), ()),
    "poll_answer": ("u", ("user", "id"), ("user",)),
    "my_chat_member": ("c", ("chat", "id"), ()),
    "chat_member": ("c", ("chat", "id"), ()),
    "chat_join_request": ("c", ("chat", "id"), ()),
    "chat_boost": ("c", ("chat", "id"), ()),
    "removed_chat_boost": ("c", ("chat", "id"), ()),
    "managed_bot": ("u", ("bot", "id"), ()),
}


class Builder:
    """Minimal valid objects of any spec type, with distinct integers and strings."""

    def __init__(self) -> None:
        self._ids: Iterator[int] = itertools.count(1001)

    def value(self, type_expr: str, depth: int = 0) -> Any:
        if type_expr.startswith("Array of "):
            return []
        if type_expr == "Integer":
            return next(self._ids)
        if type_expr == "String":
            return f"s{next(self._ids)}"
        if type_expr in ("Boolean", "True"):
            return True
        if type_expr == "Float":
            return 1.5
        return self.object(type_expr, (), depth + 1)

    def object(self, type_name: str, optional: tuple[str, ...] = (), depth: int = 0) -> Any:
        assert depth < 12, f"required fields recurse through {type_name}"
        t = SPEC.types[type_name]
        if t.subtypes:  # abstract: the first concrete subtype will do
            return self.object(t.subtypes[0], optional, depth + 1)
        return {
            f.name: self.value(f.types[0], depth)
            for f in t.fields
            if f.required or f.name in optional
        }

    def update(self, kind: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
        [field] = [f for f in SPEC.types["Update"].fields if f.name == kind]
        return {"update_id": next(self._ids), kind: self.object(field.types[0], optional)}


def case(kind: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    if kind not in EXPECTED:
        pytest.fail(f"add an expected key for the new update kind {kind!r} to EXPECTED")
    return EXPECTED[kind]


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        obj = obj[name]
    return obj


def put(obj: Any, path: tuple[str, ...], value: Any) -> None:
    for name in path[:-1]:
        obj = obj[name]
    obj[path[-1]] = value


def test_every_kind_has_a_case() -> None:
    missing = [kind for kind in KINDS if kind not in EXPECTED]
    assert not missing, f"update kinds without an expected key: {missing}"
    assert len(KINDS) >= 25  # the spec really was read


@pytest.mark.parametrize("kind", KINDS)
def test_default_key_of_every_kind(kind: str) -> None:
    prefix, path, optional = case(kind)
    update = Builder().update(kind, optional)
    keys = default_keys(update)
    assert keys == (f"{prefix}:{dig(update[kind], path)}",)
    assert all(type(k) is str for k in keys)


@pytest.mark.parametrize("kind", [k for k in KINDS if EXPECTED.get(k, ("",))[0] == "c"])
def test_a_chat_has_one_key_whatever_the_kind(kind: str) -> None:
    _, path, optional = case(kind)
    update = Builder().update(kind, optional)
    put(update[kind], path, -1005)
    assert default_keys(update) == ("c:-1005",)


def test_callback_query_without_message_is_keyed_by_its_user() -> None:
    update = Builder().update("callback_query")
    assert "message" not in update["callback_query"]
    assert default_keys(update) == (f"u:{update['callback_query']['from']['id']}",)


def test_callback_query_on_an_inaccessible_message_is_keyed_by_its_chat() -> None:
    b = Builder()
    update = b.update("callback_query")
    update["callback_query"]["message"] = b.object("InaccessibleMessage")
    chat = update["callback_query"]["message"]["chat"]["id"]
    assert default_keys(update) == (f"c:{chat}",)


def test_anonymous_poll_answer_is_keyed_by_the_voter_chat() -> None:
    b = Builder()
    update = b.update("poll_answer", ("voter_chat",))
    assert default_keys(update) == (f"c:{update['poll_answer']['voter_chat']['id']}",)


def test_poll_answer_with_no_voter_has_no_key() -> None:
    assert default_keys(Builder().update("poll_answer")) == ()


def test_an_update_with_no_kind_has_no_key() -> None:
    assert default_keys({"update_id": 1}) == ()
    assert chat_and_user_keys({"update_id": 1}) == ()


def test_a_future_kind_is_keyed_by_its_chat_or_sender() -> None:
    assert default_keys({"update_id": 1, "new_thing": {"chat": {"id": 7}}}) == ("c:7",)
    assert default_keys({"update_id": 1, "new_thing": {"from": {"id": 8}}}) == ("u:8",)
    assert default_keys({"update_id": 1, "new_thing": {"user": {"id": 9}}}) == ("u:9",)
    assert default_keys({"update_id": 1, "new_thing": {"x": 1}}) == ()
    assert default_keys({"update_id": 1, "new_thing": 3}) == ()


def test_a_malformed_payload_gets_no_key_rather_than_an_error() -> None:
    assert default_keys({"update_id": 1, "message": {"text": "no chat"}}) == ()
    assert default_keys({"update_id": 1, "message": None}) == ()
    assert default_keys({"update_id": 1, "chat_member": {"chat": None}}) == ()
    assert chat_and_user_keys({"update_id": 1, "message": {"from": None}}) == ()


def test_keys_do_not_depend_on_the_process() -> None:
    # Plain strings of Telegram's ids: equal in every process, unlike hash() of an object.
    update = {"update_id": 1, "message": {"chat": {"id": -100123}, "from": {"id": 5}}}
    assert default_keys(update) == ("c:-100123",)
    assert chat_and_user_keys(update) == ("c:-100123", "u:5")


@pytest.mark.parametrize("kind", KINDS)
def test_chat_and_user_keys_start_with_the_default_key(kind: str) -> None:
    update = Builder().update(kind, case(kind)[2])
    keys = chat_and_user_keys(update)
    assert keys[:1] == default_keys(update)
    payload = update[kind]
    sender = payload.get("from") or payload.get("user")
    if sender is not None and f"u:{sender['id']}" not in default_keys(update):
        assert keys == (*default_keys(update), f"u:{sender['id']}")
    else:
        assert keys == default_keys(update)
    assert len(set(keys)) == len(keys)


def test_chat_and_user_keys_in_a_private_chat() -> None:
    update = {"update_id": 1, "message": {"chat": {"id": 5}, "from": {"id": 5}}}
    assert chat_and_user_keys(update) == ("c:5", "u:5")


def test_chat_and_user_keys_for_a_user_only_kind_are_not_doubled() -> None:
    update = {"update_id": 1, "inline_query": {"id": "q", "from": {"id": 5}, "query": ""}}
    assert chat_and_user_keys(update) == ("u:5",)


def test_channel_post_has_no_user_key() -> None:
    update = {"update_id": 1, "channel_post": {"chat": {"id": -100}, "sender_chat": {"id": -100}}}
    assert chat_and_user_keys(update) == ("c:-100",)
