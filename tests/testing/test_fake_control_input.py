"""Bad requests to FakeTelegram's control API get a JSON error with a 4xx status and a message
that says what was wrong, never a 500 or a traceback; the server serves on afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from control_client import Control
from tgrunner.testing import FakeTelegram
from tgrunner.testing.fake.control import MAX_BODY


@pytest.fixture
async def control(tg: FakeTelegram) -> AsyncIterator[Control]:
    async with aiohttp.ClientSession() as session:
        yield Control(session, tg.api_url)


@pytest.fixture
async def alice(control: Control) -> dict[str, Any]:
    return await control.user("Alice", username="alice")


@pytest.fixture
async def menu(tg: FakeTelegram, alice: dict[str, Any], api: Any) -> dict[str, Any]:
    """A bot message with a callback button, a URL button, in Alice's chat."""
    markup = {
        "inline_keyboard": [
            [{"text": "Go", "callback_data": "go"}, {"text": "Site", "url": "https://x.org"}]
        ]
    }
    status, body = await api(
        "sendMessage", chat_id=alice["chat_id"], text="Menu", reply_markup=markup
    )
    assert status == 200
    result: dict[str, Any] = body["result"]
    return result


async def refused(
    control: Control, status: int, words: str, method: str, path: str, body: Any = None, **kw: Any
) -> None:
    """The call gets ``status``, the error envelope, and a description containing ``words``;
    then the API still answers."""
    got, envelope = await control(method, path, body, **kw)
    assert got == status, envelope
    assert envelope["ok"] is False
    assert envelope["error_code"] == status
    assert words in envelope["description"], envelope["description"]
    assert (await control("GET"))[0] == 200


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{bad json", "not valid JSON"),
        (b'{"first_name": "A",}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b'"Alice"', "must be a JSON object, not a string"),
    ],
)
async def test_malformed_json(control: Control, data: bytes, words: str) -> None:
    await refused(control, 400, words, "POST", "/users", data=data)


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/users", {"first_name": 5}, "'first_name' must be a string, not an integer"),
        ("/users", {"first_name": "A", "username": ["a"]}, "'username' must be a string"),
        ("/users", {"first_name": "A", "language_code": 1}, "'language_code' must be a string"),
        ("/send", {"user": True, "text": "x"}, "a user id (an integer) or a username"),
        ("/send", {"user": 1.5, "text": "x"}, "not a number"),
        ("/send", {"user": "@alice", "text": 5}, "'text' must be a string, not an integer"),
        ("/send", {"user": "alice", "text": "x", "chat_id": "1"}, "'chat_id' must be an integer"),
        ("/send", {"user": "alice", "photo": "yes"}, "'photo' must be a boolean"),
        ("/send", {"user": "alice", "text": "x", "reply_to": {}}, "'reply_to' must be an integer"),
        ("/groups", {"title": "T", "members": "alice"}, "members must be an array"),
        ("/groups", {"title": "T", "members": [None]}, "or a username (a string), not null"),
        ("/press", {"user": "alice", "message_id": "1", "button": 0}, "'message_id' must be an"),
        ("/press", {"user": "alice", "message_id": 1, "data": 3}, "'data' must be a string"),
        ("/press", {"user": "alice", "message_id": 1, "button": 0, "wait": "2"}, "'wait' must be"),
    ],
)
@pytest.mark.usefixtures("alice")
async def test_wrong_field_types(
    control: Control, path: str, body: dict[str, Any], words: str
) -> None:
    await refused(control, 400, words, "POST", path, body)


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/users", {}, "missing field 'first_name'"),
        ("/users", {"first_name": None}, "missing field 'first_name'"),
        ("/send", {"text": "hi"}, "missing field 'user'"),
        ("/press", {"user": "alice", "button": 0}, "missing field 'message_id'"),
        ("/edit", {"user": "alice", "message_id": 1}, "missing field 'text'"),
        ("/groups", {"members": []}, "missing field 'title'"),
        ("/users", {"first_name": "A", "nmae": "B"}, "unknown field 'nmae'; this endpoint takes"),
        ("/send", {"user": "alice"}, "either text or photo"),
        ("/send", {"user": "alice", "text": "x", "photo": True}, "either text or photo"),
        ("/send", {"user": "alice", "text": "x", "caption": "c"}, "caption goes with photo"),
        ("/send", {"user": "alice", "text": ""}, "text must have 1 to 4096 characters"),
        ("/send", {"user": "alice", "text": "x" * 4097}, "1 to 4096 characters"),
        ("/send", {"user": "alice", "photo": True, "caption": "c" * 1025}, "at most 1024"),
        ("/users", {"first_name": " "}, "first_name must have 1 to 64 characters"),
        ("/users", {"first_name": "A", "username": "ab"}, "must be 5-32 letters"),
        ("/groups", {"title": "T", "type": "channel"}, "'group' or 'supergroup'"),
        ("/groups", {"title": "T", "members": ["alice", "alice"]}, "lists a user twice"),
        ("/press", {"user": "alice", "message_id": 1}, "one of button (an index), data or text"),
        ("/press", {"user": "alice", "message_id": 1, "button": 0, "data": "go"}, "one of button"),
        ("/press", {"user": "alice", "message_id": 1, "data": "go", "wait": 11}, "from 0 to 10"),
    ],
)
@pytest.mark.usefixtures("alice")
async def test_missing_unknown_and_bad_fields(
    control: Control, path: str, body: dict[str, Any], words: str
) -> None:
    await refused(control, 400, words, "POST", path, body)


async def test_a_taken_username_is_a_conflict(control: Control, alice: dict[str, Any]) -> None:
    await refused(control, 409, "username 'ALICE' is taken", "POST", "/users",
                  {"first_name": "Other", "username": "@ALICE"})  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        ("GET", "/nope", 404, "no control endpoint /control/nope; GET /control lists"),
        ("POST", "/chats/1/messages", 404, "no control endpoint"),
        ("GET", "/chats/abc/replies", 404, "no control endpoint"),
        ("GET", "/send", 405, "/control/send takes POST, not GET"),
        ("DELETE", "/users", 405, "/control/users takes GET or POST, not DELETE"),
        ("POST", "/chats/1/replies", 405, "takes GET, not POST"),
    ],
)
async def test_unknown_endpoints_and_methods(
    control: Control, method: str, path: str, status: int, words: str
) -> None:
    await refused(control, status, words, method, path)


async def test_an_oversized_body(control: Control) -> None:
    body = {"first_name": "A", "last_name": "x" * MAX_BODY}
    await refused(control, 413, f"the control API takes {MAX_BODY}", "POST", "/users", body)


async def test_post_fields_belong_in_the_body(control: Control) -> None:
    await refused(control, 400, "in a JSON body, not the query", "POST", "/users",
                  {"first_name": "A"}, params={"first_name": "A"})  # fmt: skip


async def test_unknown_users_and_chats(control: Control, alice: dict[str, Any]) -> None:
    await refused(control, 404, "unknown user 42; create one with POST /control/users",
                  "POST", "/send", {"user": 42, "text": "hi"})  # fmt: skip
    await refused(control, 404, "unknown user '@nobody'", "POST", "/send",
                  {"user": "@nobody", "text": "hi"})  # fmt: skip
    await refused(control, 404, "unknown user 7", "POST", "/groups",
                  {"title": "T", "members": [7]})  # fmt: skip
    await refused(control, 404, "unknown chat -5; GET /control/chats lists them", "POST",
                  "/send", {"user": "alice", "text": "hi", "chat_id": -5})  # fmt: skip
    await refused(control, 404, "unknown chat 99", "GET", "/chats/99/replies")


async def test_actions_the_simulation_refuses(
    control: Control, alice: dict[str, Any], menu: dict[str, Any]
) -> None:
    bob = await control.user("Bob")
    await refused(control, 400, "another user's private chat", "POST", "/send",
                  {"user": bob["id"], "text": "hi", "chat_id": alice["chat_id"]})  # fmt: skip
    own = await control.ok("POST", "/send", {"user": "alice", "text": "mine"})
    mid = own["message"]["message_id"]
    await refused(control, 400, "only buttons of the bot's own messages", "POST", "/press",
                  {"user": "alice", "message_id": mid, "data": "go"})  # fmt: skip
    await refused(control, 400, "can edit only their own messages", "POST", "/edit",
                  {"user": "alice", "message_id": menu["message_id"], "text": "x"})  # fmt: skip
    await refused(control, 404, f"message 999 of chat {alice['chat_id']} does not exist",
                  "POST", "/send", {"user": "alice", "text": "x", "reply_to": 999})  # fmt: skip


async def test_unknown_messages_and_buttons(
    control: Control, alice: dict[str, Any], menu: dict[str, Any]
) -> None:
    mid = menu["message_id"]
    where = f"message {mid} of chat {alice['chat_id']}"
    await refused(control, 404, f"message 999 of chat {alice['chat_id']} does not exist",
                  "POST", "/press", {"user": "alice", "message_id": 999, "button": 0})  # fmt: skip
    await refused(control, 404, f"no button 2 in {where}: it has buttons 0 to 1", "POST",
                  "/press", {"user": "alice", "message_id": mid, "button": 2})  # fmt: skip
    await refused(control, 404, "no button -1", "POST", "/press",
                  {"user": "alice", "message_id": mid, "button": -1})  # fmt: skip
    await refused(control, 400, f"button 1 ('Site') of {where} is no callback button", "POST",
                  "/press", {"user": "alice", "message_id": mid, "button": 1})  # fmt: skip
    await refused(control, 404, "no callback button with data 'stop'", "POST", "/press",
                  {"user": "alice", "message_id": mid, "data": "stop"})  # fmt: skip
    await refused(control, 404, "no callback button with text 'Site'", "POST", "/press",
                  {"user": "alice", "message_id": mid, "text": "Site"})  # fmt: skip


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"after": "x"}, "after must be an integer"),
        ({"after": "1.5"}, "after must be an integer"),
        ({"wait": "soon"}, "wait a number of seconds"),
        ({"after": "-1"}, "after must be 0 or more"),
        ({"wait": "61"}, "'wait' must be from 0 to 60 seconds, not 61"),
        ({"wait": "-1"}, "from 0 to 60"),
        ({"wait": "nan"}, "from 0 to 60"),
        ({"since": "1"}, "unknown parameter 'since'; replies takes after, wait"),
    ],
)
async def test_bad_replies_queries(
    control: Control, alice: dict[str, Any], query: dict[str, str], words: str
) -> None:
    await refused(control, 400, words, "GET", f"/chats/{alice['chat_id']}/replies", params=query)


async def test_a_malformed_query_string(control: Control, alice: dict[str, Any]) -> None:
    path = f"/chats/{alice['chat_id']}/replies?after"
    await refused(control, 400, "the query string is malformed", "GET", path)
