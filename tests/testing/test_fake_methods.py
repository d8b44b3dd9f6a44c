"""The methods FakeTelegram gives real behaviour to, and a generated answer for every other
method of the spec."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest

from tgrunner.testing import FakeTelegram
from tgrunner.testing.fake.generate import Generator

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]

ALICE = {"id": 1001, "type": "private", "first_name": "Alice", "username": "alice"}
BOB = {"id": 1002, "type": "private", "first_name": "Bob"}
GROUP = {"id": -100123, "type": "supergroup", "title": "Friends", "username": "friends"}
CHANNEL = {"id": -100777, "type": "channel", "title": "News"}


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        for c in (ALICE, BOB, GROUP, CHANNEL):
            fake.state.register_chat(c)
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def api(tg: FakeTelegram, session: aiohttp.ClientSession) -> Call:
    async def call(method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        async with session.post(f"{tg.api_url}/bot{tg.token}/{method}", json=params) as r:
            return r.status, await r.json()

    return call


async def ok(api: Call, method: str, **params: Any) -> Any:
    status, body = await api(method, **params)
    assert status == 200, body
    assert set(body) == {"ok", "result"}
    assert body["ok"] is True
    return body["result"]


async def fails(api: Call, method: str, code: int = 400, **params: Any) -> str:
    status, body = await api(method, **params)
    assert status == code, body
    assert body["ok"] is False
    assert body["error_code"] == code
    return str(body["description"])


def user_message(tg: FakeTelegram, chat: dict[str, Any], text: str) -> dict[str, Any]:
    user = {"id": chat["id"], "is_bot": False, "first_name": chat.get("first_name", "U")}
    payload = {
        "message_id": tg.state.next_message_id(chat["id"]),
        "from": user,
        "chat": chat,
        "date": tg.state.now(),
        "text": text,
    }
    tg.state.push_update("message", payload)
    return payload


async def test_get_me_and_the_token_format(tg: FakeTelegram, api: Call) -> None:
    assert re.fullmatch(r"\d+:[A-Za-z0-9_-]{35}", tg.token)
    me = await ok(api, "getMe")
    assert me == tg.bot_user
    assert me["is_bot"] is True
    assert me["id"] == int(tg.token.split(":")[0])
    assert me["username"].endswith("bot")


async def test_method_names_are_case_insensitive(tg: FakeTelegram, api: Call) -> None:
    assert await ok(api, "GETME") == tg.bot_user
    await ok(api, "sendmessage", chat_id=ALICE["id"], text="hi")
    assert [r.method for r in tg.calls()] == ["getMe", "sendMessage"]


async def test_send_message_builds_a_message_of_the_bot(tg: FakeTelegram, api: Call) -> None:
    entities = [{"type": "bold", "offset": 0, "length": 5}]
    keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    msg = await ok(
        api,
        "sendMessage",
        chat_id=ALICE["id"],
        text="Hello",
        entities=entities,
        reply_markup=keyboard,
    )
    assert msg["from"] == tg.bot_user
    assert msg["chat"] == {k: ALICE[k] for k in ("id", "type", "first_name", "username")}
    assert msg["text"] == "Hello"
    assert msg["entities"] == entities
    assert msg["reply_markup"] == keyboard
    assert abs(msg["date"] - tg.state.now()) <= 2
    assert tg.replies(ALICE["id"]) == [msg]
    assert tg.replies(ALICE) == [msg]


async def test_message_ids_increase_in_each_chat(api: Call) -> None:
    a = [
        (await ok(api, "sendMessage", chat_id=ALICE["id"], text=str(i)))["message_id"]
        for i in range(3)
    ]
    b = (await ok(api, "sendMessage", chat_id=BOB["id"], text="x"))["message_id"]
    assert a == sorted(a)
    assert len(set(a)) == 3
    assert b == 1


async def test_send_message_checks(api: Call) -> None:
    assert await fails(api, "sendMessage", chat_id=424242, text="hi") == (
        "Bad Request: chat not found"
    )
    assert await fails(api, "sendMessage", chat_id=ALICE["id"], text="") == (
        "Bad Request: message text is empty"
    )
    assert await fails(api, "sendMessage", chat_id=ALICE["id"], text="x" * 4097) == (
        "Bad Request: message is too long"
    )
    await ok(api, "sendMessage", chat_id=ALICE["id"], text="x" * 4096)


async def test_reply_keyboards_are_not_part_of_the_sent_message(api: Call) -> None:
    keyboard = {"keyboard": [[{"text": "A"}]], "resize_keyboard": True}
    msg = await ok(api, "sendMessage", chat_id=ALICE["id"], text="pick", reply_markup=keyboard)
    assert "reply_markup" not in msg


async def test_chat_by_username(api: Call) -> None:
    msg = await ok(api, "sendMessage", chat_id="@friends", text="hi all")
    assert msg["chat"]["id"] == GROUP["id"]


async def test_replies_must_point_at_an_existing_message(tg: FakeTelegram, api: Call) -> None:
    original = user_message(tg, ALICE, "question")
    reply = await ok(
        api,
        "sendMessage",
        chat_id=ALICE["id"],
        text="answer",
        reply_parameters={"message_id": original["message_id"]},
    )
    assert reply["reply_to_message"] == original
    assert (
        await fails(
            api, "sendMessage", chat_id=ALICE["id"], text="x", reply_parameters={"message_id": 999}
        )
        == "Bad Request: message to be replied not found"
    )
    lenient = await ok(
        api,
        "sendMessage",
        chat_id=ALICE["id"],
        text="x",
        reply_parameters={"message_id": 999, "allow_sending_without_reply": True},
    )
    assert "reply_to_message" not in lenient


async def test_legacy_reply_to_message_id(tg: FakeTelegram, api: Call) -> None:
    original = user_message(tg, ALICE, "question")
    reply = await ok(
        api,
        "sendMessage",
        chat_id=ALICE["id"],
        text="a",
        reply_to_message_id=original["message_id"],
    )
    assert reply["reply_to_message"]["message_id"] == original["message_id"]
    assert (
        await fails(api, "sendMessage", chat_id=ALICE["id"], text="a", reply_to_message_id=12345)
        == "Bad Request: message to be replied not found"
    )


async def test_thread_and_business_connection_are_echoed(api: Call) -> None:
    msg = await ok(
        api,
        "sendMessage",
        chat_id=GROUP["id"],
        text="t",
        message_thread_id=5,
        business_connection_id="bc1",
    )
    assert msg["message_thread_id"] == 5
    assert msg["business_connection_id"] == "bc1"


async def test_channel_posts_have_a_sender_chat(api: Call) -> None:
    msg = await ok(api, "sendMessage", chat_id=CHANNEL["id"], text="news")
    assert msg["sender_chat"]["id"] == CHANNEL["id"]
    assert "from" not in msg


async def test_query_string_and_urlencoded_and_json_encoded_fields(
    tg: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    base = f"{tg.api_url}/bot{tg.token}/sendMessage"
    keyboard = orjson.dumps({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}).decode()
    async with session.get(base, params={"chat_id": str(ALICE["id"]), "text": "by GET"}) as r:
        assert r.status == 200
        assert (await r.json())["result"]["text"] == "by GET"
    form = {"chat_id": str(ALICE["id"]), "text": "by form", "reply_markup": keyboard}
    async with session.post(base, data=form) as r:
        body = await r.json()
        assert r.status == 200, body
        assert body["result"]["reply_markup"] == orjson.loads(keyboard)
    # Query string and body merge.
    async with session.post(base, params={"chat_id": str(BOB["id"])}, json={"text": "mixed"}) as r:
        body = await r.json()
        assert r.status == 200, body
        assert body["result"]["chat"]["id"] == BOB["id"]


async def test_photo_upload_get_file_and_download(
    tg: FakeTelegram, session: aiohttp.ClientSession, api: Call
) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(ALICE["id"]))
    form.add_field("caption", "a picture")
    form.add_field("photo", b"\x89PNG fake", filename="cat.png", content_type="image/png")
    async with session.post(f"{tg.api_url}/bot{tg.token}/sendPhoto", data=form) as r:
        body = await r.json()
        assert r.status == 200, body
    msg = body["result"]
    sizes = msg["photo"]
    assert len(sizes) == 3
    assert msg["caption"] == "a picture"
    assert [s["width"] for s in sizes] == sorted(s["width"] for s in sizes)
    largest = sizes[-1]
    file = await ok(api, "getFile", file_id=largest["file_id"])
    assert file["file_id"] == largest["file_id"]
    assert file["file_path"]
    async with session.get(f"{tg.api_url}/file/bot{tg.token}/{file['file_path']}") as r:
        assert r.status == 200
        assert await r.read() == b"\x89PNG fake"
    # The file id can be sent again.
    again = await ok(api, "sendPhoto", chat_id=BOB["id"], photo=largest["file_id"])
    assert again["photo"][-1]["file_id"] == largest["file_id"]


@pytest.mark.parametrize(
    ("method", "field", "extra"),
    [
        ("sendDocument", "document", {}),
        ("sendVideo", "video", {"duration": 3}),
        ("sendAudio", "audio", {"title": "Song"}),
        ("sendVoice", "voice", {}),
        ("sendAnimation", "animation", {}),
        ("sendSticker", "sticker", {}),
        ("sendVideoNote", "video_note", {}),
    ],
)
async def test_media_by_url(api: Call, method: str, field: str, extra: dict[str, Any]) -> None:
    msg = await ok(
        api, method, chat_id=ALICE["id"], **{field: "https://example.com/f.bin"}, **extra
    )
    media = msg[field]
    assert media["file_id"]
    assert media["file_unique_id"]


async def test_media_group(tg: FakeTelegram, session: aiohttp.ClientSession) -> None:
    media = [
        {"type": "photo", "media": "attach://one", "caption": "first"},
        {"type": "document", "media": "https://example.com/doc.pdf"},
    ]
    form = aiohttp.FormData()
    form.add_field("chat_id", str(ALICE["id"]))
    form.add_field("media", orjson.dumps(media).decode())
    form.add_field("one", b"img", filename="one.jpg", content_type="image/jpeg")
    async with session.post(f"{tg.api_url}/bot{tg.token}/sendMediaGroup", data=form) as r:
        body = await r.json()
        assert r.status == 200, body
    first, second = body["result"]
    assert first["media_group_id"] == second["media_group_id"]
    assert "photo" in first
    assert first["caption"] == "first"
    assert "document" in second
    assert second["message_id"] == first["message_id"] + 1


async def test_location_contact_venue_poll_dice(api: Call) -> None:
    loc = await ok(api, "sendLocation", chat_id=ALICE["id"], latitude=51.5, longitude=-0.12)
    assert loc["location"] == {"latitude": 51.5, "longitude": -0.12}
    contact = await ok(
        api, "sendContact", chat_id=ALICE["id"], phone_number="+100", first_name="Ann"
    )
    assert contact["contact"] == {"phone_number": "+100", "first_name": "Ann"}
    venue = await ok(
        api,
        "sendVenue",
        chat_id=ALICE["id"],
        latitude=1.0,
        longitude=2.0,
        title="Cafe",
        address="Main St",
    )
    assert venue["venue"]["title"] == "Cafe"
    assert venue["location"]["latitude"] == 1.0
    poll = await ok(
        api,
        "sendPoll",
        chat_id=GROUP["id"],
        question="Tea?",
        options=[{"text": "Yes"}, {"text": "No"}],
    )
    assert [o["text"] for o in poll["poll"]["options"]] == ["Yes", "No"]
    assert poll["poll"]["total_voter_count"] == 0
    values = {(await ok(api, "sendDice", chat_id=ALICE["id"]))["dice"]["value"] for _ in range(30)}
    assert values <= set(range(1, 7))
    assert len(values) > 1
    slot = await ok(api, "sendDice", chat_id=ALICE["id"], emoji="🎰")
    assert 1 <= slot["dice"]["value"] <= 64


async def test_copy_and_forward(tg: FakeTelegram, api: Call) -> None:
    original = user_message(tg, ALICE, "share me")
    copied = await ok(
        api,
        "copyMessage",
        chat_id=BOB["id"],
        from_chat_id=ALICE["id"],
        message_id=original["message_id"],
    )
    assert set(copied) == {"message_id"}
    assert tg.state.get_message(BOB["id"], copied["message_id"])["text"] == "share me"
    forwarded = await ok(
        api,
        "forwardMessage",
        chat_id=BOB["id"],
        from_chat_id=ALICE["id"],
        message_id=original["message_id"],
    )
    assert forwarded["text"] == "share me"
    assert forwarded["forward_origin"]["type"] == "user"
    assert forwarded["forward_origin"]["sender_user"]["id"] == ALICE["id"]
    assert (
        await fails(api, "copyMessage", chat_id=BOB["id"], from_chat_id=ALICE["id"], message_id=999)
        == "Bad Request: message to copy not found"
    )
    second = user_message(tg, ALICE, "two")
    ids = await ok(
        api,
        "forwardMessages",
        chat_id=BOB["id"],
        from_chat_id=ALICE["id"],
        message_ids=[original["message_id"], second["message_id"], 999],
    )
    assert len(ids) == 2
    ids = await ok(
        api,
        "copyMessages",
        chat_id=BOB["id"],
        from_chat_id=ALICE["id"],
        message_ids=[original["message_id"], second["message_id"]],
    )
    assert len(ids) == 2


async def test_edit_message_text(tg: FakeTelegram, api: Call) -> None:
    keyboard = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    sent = await ok(api, "sendMessage", chat_id=ALICE["id"], text="v1", reply_markup=keyboard)
    mid = sent["message_id"]
    assert await fails(
        api,
        "editMessageText",
        chat_id=ALICE["id"],
        message_id=mid,
        text="v1",
        reply_markup=keyboard,
    ) == (
        "Bad Request: message is not modified: specified new message content and reply markup"
        " are exactly the same as a current content and reply markup of the message"
    )
    edited = await ok(
        api,
        "editMessageText",
        chat_id=ALICE["id"],
        message_id=mid,
        text="v2",
        reply_markup=keyboard,
    )
    assert edited["text"] == "v2"
    assert edited["reply_markup"] == keyboard
    assert "edit_date" in edited
    assert tg.state.get_message(ALICE["id"], mid)["text"] == "v2"
    assert (
        await fails(api, "editMessageText", chat_id=ALICE["id"], message_id=999, text="x")
        == "Bad Request: message to edit not found"
    )
    # Same text, keyboard removed: that is a change.
    plain = await ok(api, "editMessageReplyMarkup", chat_id=ALICE["id"], message_id=mid)
    assert "reply_markup" not in plain
    # Inline messages are not tracked: True, as Telegram answers for them.
    assert await ok(api, "editMessageText", inline_message_id="abc", text="x") is True


async def test_edit_caption_and_media(api: Call) -> None:
    sent = await ok(
        api, "sendPhoto", chat_id=ALICE["id"], photo="https://example.com/a.jpg", caption="c1"
    )
    mid = sent["message_id"]
    edited = await ok(api, "editMessageCaption", chat_id=ALICE["id"], message_id=mid, caption="c2")
    assert edited["caption"] == "c2"
    swapped = await ok(
        api,
        "editMessageMedia",
        chat_id=ALICE["id"],
        message_id=mid,
        media={"type": "document", "media": "https://example.com/b.pdf"},
    )
    assert "document" in swapped
    assert "photo" not in swapped


async def test_delete_messages(tg: FakeTelegram, api: Call) -> None:
    sent = await ok(api, "sendMessage", chat_id=ALICE["id"], text="bye")
    assert await ok(api, "deleteMessage", chat_id=ALICE["id"], message_id=sent["message_id"])
    assert (
        await fails(api, "deleteMessage", chat_id=ALICE["id"], message_id=sent["message_id"])
        == "Bad Request: message to delete not found"
    )
    more = [(await ok(api, "sendMessage", chat_id=ALICE["id"], text=t))["message_id"] for t in "ab"]
    assert await ok(api, "deleteMessages", chat_id=ALICE["id"], message_ids=[*more, 999])
    assert tg.state.get_message(ALICE["id"], more[0]) is None


async def test_answer_callback_query(tg: FakeTelegram, api: Call) -> None:
    sent = await ok(
        api,
        "sendMessage",
        chat_id=ALICE["id"],
        text="pick",
        reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]},
    )
    query = {
        "id": "4382bfdwdsb323b2d9",
        "from": {"id": ALICE["id"], "is_bot": False, "first_name": "Alice"},
        "message": sent,
        "chat_instance": "-123",
        "data": "a",
    }
    tg.state.push_update("callback_query", query)
    assert await ok(api, "answerCallbackQuery", callback_query_id=query["id"], text="Done")
    assert tg.state.queries[query["id"]]["answer"]["text"] == "Done"
    assert await fails(api, "answerCallbackQuery", callback_query_id="nope") == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )


async def test_chat_action_and_chat_info(tg: FakeTelegram, api: Call) -> None:
    assert await ok(api, "sendChatAction", chat_id=ALICE["id"], action="typing") is True
    info = await ok(api, "getChat", chat_id=GROUP["id"])
    assert info["id"] == GROUP["id"]
    assert info["title"] == "Friends"
    assert {"accent_color_id", "max_reaction_count", "accepted_gift_types"} <= set(info)
    assert await fails(api, "getChat", chat_id=5555) == "Bad Request: chat not found"
    member = await ok(api, "getChatMember", chat_id=ALICE["id"], user_id=ALICE["id"])
    assert member["status"] == "member"
    assert member["user"]["id"] == ALICE["id"]
    me = await ok(api, "getChatMember", chat_id=GROUP["id"], user_id=tg.bot_user["id"])
    assert me["user"] == tg.bot_user
    user_message(tg, GROUP, "hi")
    assert await ok(api, "getChatMemberCount", chat_id=GROUP["id"]) == 2
    assert await ok(api, "getChatAdministrators", chat_id=GROUP["id"]) == []
    assert await fails(api, "getChatAdministrators", chat_id=ALICE["id"]) == (
        "Bad Request: there are no administrators in the private chat"
    )


async def test_calls_are_recorded(tg: FakeTelegram, api: Call) -> None:
    await ok(api, "sendMessage", chat_id=ALICE["id"], text="one")
    await fails(api, "sendMessage", chat_id=ALICE["id"], text="")
    first, second = tg.calls("sendmessage")
    assert first.method == "sendMessage"
    assert first.params["text"] == "one"
    assert first.status == 200
    assert first.response["text"] == "one"
    assert first.token == tg.token
    assert second.status == 400
    assert not second.ok
    call = await tg.wait_for_call("sendMessage", where=lambda r: r.status == 400)
    assert call is second


async def test_every_method_of_the_spec_answers(tg: FakeTelegram, api: Call) -> None:
    """Each of the spec's methods, called with generated values for its required parameters,
    answers ok or with a Telegram error; never 404 or 500."""
    gen = Generator(tg.state.spec, seed=1)
    spec = tg.state.spec
    assert len(spec.methods) == 180
    for name, method in spec.methods.items():
        if name in ("getUpdates", "logOut", "close"):
            continue
        params: dict[str, Any] = {}
        for field in method.fields:
            if not field.required:
                continue
            if field.name in ("chat_id", "from_chat_id"):
                params[field.name] = ALICE["id"]
            elif "InputFile" in " ".join(field.types):
                params[field.name] = "https://example.com/file.bin"
            else:
                params[field.name] = gen.value(field.types)
        status, body = await api(name, **params)
        assert status not in (404, 500), (name, body)
        assert body["ok"] is (status == 200), (name, body)
        if status != 200:
            assert body["description"].startswith(("Bad Request", "Forbidden")), (name, body)


async def test_simulated_users_talk_to_the_bot(tg: FakeTelegram, api: Call) -> None:
    alice = tg.user("Alice", username="alice_sim")
    sent = alice.send("/start")
    [update] = await ok(api, "getUpdates")
    assert update["message"] == sent
    menu = await ok(
        api,
        "sendMessage",
        chat_id=alice.id,
        text="Menu",
        reply_markup={"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]},
        reply_parameters={"message_id": sent["message_id"]},
    )
    [reply] = await tg.wait_for_replies(alice, 1)
    assert reply == menu
    query = alice.press(menu, data="yes")
    got = await ok(api, "getUpdates", offset=update["update_id"] + 1)
    assert got[0]["callback_query"]["id"] == query["id"]
    assert await ok(api, "answerCallbackQuery", callback_query_id=query["id"]) is True
    team = tg.supergroup("Team", members=[alice])
    assert (await ok(api, "getChat", chat_id=team.id))["title"] == "Team"


async def test_close_is_safe_twice() -> None:
    tg = FakeTelegram()
    await tg.close()  # never started: nothing to do
    await tg.start()
    await tg.close()
    await tg.close()


async def test_a_bounded_record_keeps_the_last_requests() -> None:
    async with FakeTelegram(record=3) as tg, aiohttp.ClientSession() as session:
        tg.state.register_chat(ALICE)
        url = f"{tg.api_url}/bot{tg.token}/sendMessage"
        for i in range(5):
            async with session.post(url, json={"chat_id": ALICE["id"], "text": str(i)}) as r:
                assert r.status == 200
        assert [r.params["text"] for r in tg.requests] == ["2", "3", "4"]
        waiting = asyncio.ensure_future(
            tg.wait_for_call("sendMessage", where=lambda r: r.params["text"] == "later")
        )
        for text in ("a", "b", "c", "later"):
            async with session.post(url, json={"chat_id": ALICE["id"], "text": text}) as r:
                assert r.status == 200
        assert (await waiting).params["text"] == "later"
