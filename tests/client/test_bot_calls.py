"""The native Bot API client against FakeTelegram over real HTTP: results, uploads, and each
Telegram error mapped to its class with the method, the code and ``retry_after``."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tgrunner import errors
from tgrunner.client.bot import Bot, InputFile
from tgrunner.testing import FakeTelegram, Faults, FloodLimits


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        yield client


async def test_get_me_and_any_method_by_name(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert me["id"] == bot.id and me["is_bot"] is True
    commands = await bot.call("getMyCommands")
    assert isinstance(commands, list)
    assert await bot.call("setMyCommands", commands=[{"command": "a", "description": "b"}])


async def test_send_message_with_reply_and_keyboard(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    asked = alice.send("hi")
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}
    sent = await bot.send_message(
        alice.chat.id,
        "hello",
        reply_parameters={"message_id": asked["message_id"]},
        reply_markup=markup,
    )
    assert sent["text"] == "hello"
    assert sent["reply_to_message"]["message_id"] == asked["message_id"]
    assert sent["reply_markup"] == markup
    assert tg.replies(alice) == [sent]


@pytest.mark.parametrize("kind", ["bytes", "inputfile", "path", "stream"])
async def test_uploads_go_as_multipart(
    tg: FakeTelegram, bot: Bot, tmp_path: Path, kind: str
) -> None:
    alice = tg.user("Alice")
    data = bytes(range(256)) * 4
    path = tmp_path / "pic.jpg"
    path.write_bytes(data)
    photo = {
        "bytes": data,
        "inputfile": InputFile(data, "pic.jpg"),
        "path": path,
        "stream": io.BytesIO(data),
    }[kind]
    msg = await bot.send_photo(alice.chat.id, photo, caption="look")
    assert msg["caption"] == "look"
    file = await bot.call("getFile", file_id=msg["photo"][-1]["file_id"])
    assert file["file_size"] == len(data)


async def test_media_group_files_are_attached(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    media = [
        {"type": "photo", "media": InputFile(b"one", "1.jpg")},
        {"type": "photo", "media": InputFile(b"two", "2.jpg")},
    ]
    sent = await bot.call("sendMediaGroup", chat_id=alice.chat.id, media=media)
    assert len(sent) == 2
    request = tg.calls("sendMediaGroup")[-1]
    assert [m["media"] for m in request.params["media"]] == ["attach://tgr_0_media",
                                                             "attach://tgr_1_media"]  # fmt: skip


async def test_errors_map_to_classes(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(errors.BadRequest, match="chat not found") as bad:
        await bot.send_message(424242, "x")
    assert (bad.value.method, bad.value.error_code) == ("sendMessage", 400)
    with pytest.raises(errors.NotFound):
        await bot.call("noSuchMethod")
    bot_id = tg.token.partition(":")[0]
    async with Bot(f"{bot_id}:AAwrongwrongwrongwrongwrongwrongwro", api_url=tg.api_url) as wrong:
        with pytest.raises(errors.Unauthorized):
            await wrong.get_me()


async def test_flood_limit_is_retry_after(tg: FakeTelegram, bot: Bot) -> None:
    alice = tg.user("Alice")
    tg.flood = FloodLimits(per_chat_per_second=1, private_burst=1)
    await bot.send_message(alice.chat.id, "one")
    with pytest.raises(errors.RetryAfter) as flood:
        await bot.send_message(alice.chat.id, "two")
    assert flood.value.error_code == 429
    assert flood.value.retry_after is not None and flood.value.retry_after >= 1


async def test_server_errors_and_resets(tg: FakeTelegram, bot: Bot) -> None:
    tg.faults = Faults(error_rate=1.0)
    with pytest.raises(errors.ServerError):
        await bot.get_me()
    tg.faults = Faults(reset_rate=1.0)
    with pytest.raises(errors.NetworkError, match="getMe"):
        await bot.call("getMe")
    tg.faults = None
    assert (await bot.call("getMe"))["id"] == bot.id


async def test_timeout_is_timed_out(tg: FakeTelegram) -> None:
    tg.faults = Faults(latency=2.0)
    async with Bot(tg.token, api_url=tg.api_url, timeout=0.2) as slow:
        with pytest.raises(errors.TimedOut):
            await slow.call("getMe")


async def test_unreachable_server_is_network_error() -> None:
    async with Bot("1:AAtest", api_url="http://127.0.0.1:9") as bot:
        with pytest.raises(errors.NetworkError, match="cannot reach"):
            await bot.get_me()


@pytest.mark.parametrize("token", ["", "abc", "123", "123:", "12 3:abc", "1:a/b"])
def test_malformed_token_is_a_config_error(token: str) -> None:
    with pytest.raises(errors.ConfigError, match="format"):
        Bot(token)
