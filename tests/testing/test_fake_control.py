"""FakeTelegram's control API, endpoint by endpoint, with a real bot (tests/bots/keyboard_bot)
run in-process by tgrunner's Runner against the fake over real HTTP."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bots.keyboard_bot import router
from control_client import Control
from tgrunner import Runner
from tgrunner._http.server import Request
from tgrunner.settings import PollingOptions, Settings
from tgrunner.testing import FakeTelegram
from tgrunner.testing.fake.control import ENDPOINTS

FAST = PollingOptions(timeout=1, backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture
async def control(tg: FakeTelegram) -> AsyncIterator[Control]:
    async with aiohttp.ClientSession() as session:
        yield Control(session, tg.api_url)


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[None]:
    """keyboard_bot served by the runtime for the test; it must stop cleanly."""
    runner = Runner(
        router, token=tg.token, api_url=tg.api_url, settings=Settings(polling=FAST, grace=5.0)
    )
    task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
    await tg.wait_until_polling()
    yield
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_index_describes_the_api(tg: FakeTelegram, control: Control) -> None:
    index = await control.ok("GET")
    assert index["token"] == tg.token
    assert index["bot"]["id"] == tg.bot_user["id"]
    assert index["control_url"] == tg.control_url == f"{tg.api_url}/control"
    assert index["secret_required"] is False
    listed = [(e["method"], e["path"]) for e in index["endpoints"]]
    assert listed == [(e.method, e.path) for e in ENDPOINTS]
    assert await control.ok("GET", "/") == index  # a trailing slash is the same path


async def test_users_are_created_and_listed(tg: FakeTelegram, control: Control) -> None:
    alice = await control.user("Alice", username="alice", last_name="Liddell")
    assert alice["id"] == alice["chat_id"]
    assert alice["user"] == {
        "id": alice["id"],
        "is_bot": False,
        "first_name": "Alice",
        "last_name": "Liddell",
        "username": "alice",
        "language_code": "en",
    }
    quiet = await control.user("Quiet", language_code=None)
    assert "language_code" not in quiet["user"]
    bob = tg.user("Bob")  # made through the Python API: the control API sees it too
    users = await control.ok("GET", "/users")
    assert [u["id"] for u in users] == [alice["id"], quiet["id"], bob.id]
    chats = await control.ok("GET", "/chats")
    assert chats[0] == {"id": alice["id"], "type": "private", "title": None, "user_id": alice["id"]}
    # The fake knows the user as Telegram would: getChat answers for the private chat.
    assert tg.state.resolve_chat(alice["chat_id"])["first_name"] == "Alice"


@pytest.mark.usefixtures("bot")
async def test_start_then_text_with_long_polls(control: Control) -> None:
    alice = await control.user("Alice", username="alice")
    sent = await control.ok("POST", "/send", {"user": alice["id"], "text": "/start"})
    assert sent["cursor"] == 0
    assert sent["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    menu = await control.replies(alice["chat_id"], after=sent["cursor"])
    [reply] = menu["replies"]
    assert menu["cursor"] == reply["seq"] == 1
    assert reply["text"] == "Hello, Alice! Pick one:"
    assert reply["kind"] == "text" and reply["edited"] is False and reply["deleted"] is False
    assert [(b["index"], b["text"]) for b in reply["buttons"]] == [
        (0, "Yes"),
        (1, "No"),
        (2, "Later"),
        (3, "Docs"),
    ]
    assert reply["buttons"][3]["url"] == "https://example.org/docs"
    assert reply["message"]["from"]["is_bot"] is True

    # A username (any case, @ optional) works wherever a user is expected.
    sent = await control.ok("POST", "/send", {"user": "@Alice", "text": "hello"})
    assert sent["cursor"] == 1
    echo = await control.replies(alice["chat_id"], after=sent["cursor"])
    [reply] = echo["replies"]
    assert (reply["seq"], reply["text"]) == (2, "hello")
    assert reply["message"]["reply_to_message"]["message_id"] == sent["message"]["message_id"]
    # Without after, every reply; with the latest cursor and no wait, nothing.
    assert [r["seq"] for r in (await control.replies(alice["chat_id"], wait=0))["replies"]] == [
        1,
        2,
    ]
    assert (await control.replies(alice["chat_id"], after=2, wait=0))["replies"] == []


@pytest.mark.usefixtures("bot")
async def test_a_long_poll_returns_when_the_reply_arrives(
    tg: FakeTelegram, control: Control
) -> None:
    alice = await control.user("Alice")
    # The poll is handed to the server's handler directly, so it is known to be waiting (an
    # awaitable, not an answer) before the message exists.
    assert tg.control is not None
    query = b"after=0&wait=50"
    request = Request("GET", f"/control/chats/{alice['chat_id']}/replies", query, {}, b"", None)
    pending = tg.control.handle(request)
    assert inspect.isawaitable(pending)
    poll = asyncio.ensure_future(pending)
    await control.ok("POST", "/send", {"user": alice["id"], "text": "ping"})
    async with asyncio.timeout(20):  # far less than the poll's 50 s
        response = await poll
    result = orjson.loads(response.body)["result"]
    assert [r["text"] for r in result["replies"]] == ["ping"]
    # Over HTTP too: a poll for what comes after the cursor waits for the next reply.
    sent = await control.ok("POST", "/send", {"user": alice["id"], "text": "pong"})
    later = await control.replies(alice["chat_id"], after=sent["cursor"], wait=50)
    assert [r["text"] for r in later["replies"]] == ["pong"]


async def test_a_long_poll_with_nothing_new_ends_empty(control: Control) -> None:
    alice = await control.user("Alice")
    result = await control.replies(alice["chat_id"], wait=0.2)
    assert result == {"chat_id": alice["chat_id"], "cursor": 0, "replies": []}


@pytest.mark.usefixtures("bot")
async def test_press_by_index_answers_and_the_edit_shows(control: Control) -> None:
    alice = await control.user("Alice")
    await control.ok("POST", "/send", {"user": alice["id"], "text": "/start"})
    [menu] = (await control.replies(alice["chat_id"]))["replies"]
    body = {"user": alice["id"], "message_id": menu["message_id"], "button": 0, "wait": 10}
    pressed = await control.ok("POST", "/press", body)
    assert pressed["answered"] is True
    assert pressed["answer"] == {"text": "Noted: yes"}
    assert pressed["callback_query_id"]
    assert pressed["cursor"] == 1
    # The bot edits before it answers, so the edit is already there; the poll shows it.
    [edited] = (await control.replies(alice["chat_id"], after=pressed["cursor"]))["replies"]
    assert edited["message_id"] == menu["message_id"]
    assert edited["seq"] == 2
    assert edited["text"] == "You picked yes."
    assert edited["edited"] is True
    assert edited["buttons"] == []  # an edit without reply_markup drops the keyboard
    # The whole list shows each message once, in its current version.
    everything = await control.replies(alice["chat_id"], wait=0)
    assert [(r["message_id"], r["text"]) for r in everything["replies"]] == [
        (menu["message_id"], "You picked yes.")
    ]


@pytest.mark.usefixtures("bot")
@pytest.mark.parametrize(
    ("how", "picked"), [({"data": "no"}, "no"), ({"text": "Yes"}, "yes"), ({"button": 1}, "no")]
)
async def test_press_by_data_or_label(control: Control, how: dict[str, Any], picked: str) -> None:
    alice = await control.user("Alice")
    await control.ok("POST", "/send", {"user": alice["id"], "text": "/start"})
    [menu] = (await control.replies(alice["chat_id"]))["replies"]
    body = {"user": alice["id"], "message_id": menu["message_id"], "wait": 10} | how
    pressed = await control.ok("POST", "/press", body)
    assert pressed["answer"] == {"text": f"Noted: {picked}"}
    [edited] = (await control.replies(alice["chat_id"], after=pressed["cursor"]))["replies"]
    assert edited["text"] == f"You picked {picked}."


@pytest.mark.usefixtures("bot")
async def test_press_reports_a_callback_left_unanswered(tg: FakeTelegram, control: Control) -> None:
    alice = await control.user("Alice")
    await control.ok("POST", "/send", {"user": alice["id"], "text": "/start"})
    [menu] = (await control.replies(alice["chat_id"]))["replies"]
    body = {"user": alice["id"], "message_id": menu["message_id"], "data": "later", "wait": 0.3}
    pressed = await control.ok("POST", "/press", body)
    assert (pressed["answered"], pressed["answer"]) == (False, None)
    # The bot did get the callback query: the fake knows its id.
    assert tg.state.known_query(pressed["callback_query_id"]) is not None


@pytest.mark.usefixtures("bot")
async def test_groups_and_photos(control: Control) -> None:
    alice = await control.user("Alice")
    bob = await control.user("Bob", username="bob_b")
    group = await control.ok(
        "POST", "/groups", {"title": "Team", "members": [alice["id"], "@bob_b"]}
    )
    assert group["chat"] == {"id": group["id"], "type": "group", "title": "Team"}
    assert group["id"] < 0
    sent = await control.ok(
        "POST", "/send", {"user": bob["id"], "chat_id": group["id"], "text": "hi all"}
    )
    assert sent["message"]["chat"]["id"] == group["id"]
    [echo] = (await control.replies(group["id"], after=sent["cursor"]))["replies"]
    assert echo["text"] == "hi all"
    chats = await control.ok("GET", "/chats")
    assert {"id": group["id"], "type": "group", "title": "Team", "user_id": None} in chats

    sent = await control.ok("POST", "/send", {"user": alice["id"], "photo": True, "caption": "cat"})
    assert sent["message"]["caption"] == "cat" and sent["message"]["photo"]
    [reply] = (await control.replies(alice["chat_id"], after=sent["cursor"]))["replies"]
    assert reply["text"] == "A photo of 1280x960"

    supergroup = await control.ok("POST", "/groups", {"title": "Big", "type": "supergroup"})
    assert supergroup["chat"]["type"] == "supergroup"
    assert str(supergroup["id"]).startswith("-100")


async def test_a_user_edits_their_message(tg: FakeTelegram, control: Control) -> None:
    alice = await control.user("Alice")
    sent = await control.ok("POST", "/send", {"user": alice["id"], "text": "helo"})
    mid = sent["message"]["message_id"]
    edited = await control.ok(
        "POST", "/edit", {"user": alice["id"], "message_id": mid, "text": "hello /help"}
    )
    assert edited["message"]["text"] == "hello /help"
    assert edited["message"]["entities"][0]["type"] == "bot_command"
    assert "edit_date" in edited["message"]
    assert tg.population.last_update["edited_message"]["message_id"] == mid


async def test_a_deleted_reply_is_reported_again(
    tg: FakeTelegram, control: Control, api: Any
) -> None:
    alice = await control.user("Alice")
    status, body = await api("sendMessage", chat_id=alice["chat_id"], text="soon gone")
    assert status == 200
    mid = body["result"]["message_id"]
    first = await control.replies(alice["chat_id"], wait=0)
    assert [(r["seq"], r["deleted"]) for r in first["replies"]] == [(1, False)]
    status, _ = await api("deleteMessage", chat_id=alice["chat_id"], message_id=mid)
    assert status == 200
    [gone] = (await control.replies(alice["chat_id"], after=first["cursor"]))["replies"]
    assert (gone["seq"], gone["deleted"], gone["text"]) == (2, True, "soon gone")


async def test_bot_api_paths_are_untouched(tg: FakeTelegram, control: Control, api: Any) -> None:
    status, body = await api("getMe")
    assert status == 200 and body["result"]["id"] == tg.bot_user["id"]
    async with control.session.get(f"{tg.api_url}/controlroom") as response:
        assert response.status == 404  # not under /control: the Bot API's 404
        assert (await response.json())["description"] == "Not Found"


async def test_the_secret_is_required_when_set() -> None:
    async with FakeTelegram(control_secret="s3cret") as tg, aiohttp.ClientSession() as session:
        status, body = await Control(session, tg.api_url)("GET", "/users")
        assert status == 401 and "X-Control-Secret" in body["description"]
        status, _ = await Control(session, tg.api_url, secret="wrong")("GET", "/users")
        assert status == 401
        index = await Control(session, tg.api_url, secret="s3cret").ok("GET")
        assert index["secret_required"] is True


async def test_control_can_be_turned_off() -> None:
    async with FakeTelegram(control=False) as tg, aiohttp.ClientSession() as session:
        assert tg.control is None
        async with session.get(tg.control_url) as response:
            assert response.status == 404


def test_thread_mode_serves_the_control_api_too() -> None:
    import json
    import urllib.request

    with FakeTelegram().in_thread() as tg:
        request = urllib.request.Request(
            tg.control_url + "/users", data=json.dumps({"first_name": "Tess"}).encode()
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            created = json.loads(response.read())["result"]
        assert created["user"]["first_name"] == "Tess"
        # Made over HTTP on the server's thread, the user is the Python API's as well.
        assert tg.population._chats[created["id"]].user.first_name == "Tess"
