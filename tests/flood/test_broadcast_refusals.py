"""What a broadcast refuses when it is made, before anything is written or sent: a build that
cannot be found again by its path (a lambda, a closure, a nested function), a build with the
wrong arguments, text and build together or neither, parameters it sets itself or that cannot
be stored, and chats that are not chat ids."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import broadcast_builds
from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.flood.broadcast import Broadcaster, bot_sender
from tgrunner.flood.outbox import Outbox
from tgrunner.testing import FakeTelegram

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def caster(tg: FakeTelegram, tmp_path: Path) -> AsyncIterator[Broadcaster]:
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        with Outbox(tmp_path / "broadcasts.sqlite") as outbox:
            async with Broadcaster(outbox, bot_sender(bot)) as b:
                yield b
            assert outbox.listing() == []  # nothing refused was written
    assert tg.calls("sendMessage") == []


def closure_build(prefix: str) -> Any:
    def build(chat_id: int) -> dict[str, Any]:
        return {"text": prefix}

    return build


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda chat_id: {"text": "hi"}, "cannot be imported by its path (a lambda"),
        (closure_build("hi"), "cannot be imported by its path (a lambda, or a function defined"),
        (functools.partial(broadcast_builds.personal), "has no import path"),
        (broadcast_builds.two_arguments, "must take one argument, the chat id"),
        ("broadcast_builds:personal", "build must be a function chat_id -> dict"),
    ],
    ids=["lambda", "closure", "partial", "arguments", "a string"],
)
async def test_a_build_that_cannot_be_found_again_is_refused(
    caster: Broadcaster, build: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        await caster.start([1, 2], build=build)
    assert message in str(info.value)


async def test_a_nested_function_is_refused(caster: Broadcaster) -> None:
    def build(chat_id: int) -> dict[str, Any]:
        return {"text": "hi"}

    with pytest.raises(ConfigError, match="define a broadcast's build function at the top"):
        await caster.start([1], build=build)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "a broadcast sends text=... or build=...: give one of them"),
        ({"text": "hi", "build": broadcast_builds.personal}, "give one of them"),
        ({"text": "  "}, "a broadcast's text must be a non-empty str"),
        ({"text": b"hi"}, "a broadcast's text must be a non-empty str, not b'hi'"),
        ({"text": "hi", "chat_id": 5}, "a broadcast sets chat_id itself"),
        ({"text": "hi", "allow_paid_broadcast": True}, "and paid=True for allow_paid_broadcast"),
        ({"text": "hi", "paid": "yes"}, "paid must be True or False"),
        ({"text": "hi", "reply_markup": object()}, "the broadcast's parameters cannot be stored"),
    ],
    ids=["neither", "both", "blank", "bytes", "chat_id", "allow_paid", "paid", "unstorable"],
)
async def test_a_broadcast_that_cannot_be_sent_is_refused(
    caster: Broadcaster, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        await caster.start([1, 2], **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("chats", "message"),
    [
        ([1, 2.5], "chat #1 of the broadcast, 2.5, is not a chat id"),
        ([True], "chat #0 of the broadcast, True, is not"),
        (["alice"], "'alice', is not a chat id (an int) or an '@username'"),
        ([1, None], "chat #1 of the broadcast, None"),
    ],
    ids=["float", "bool", "no @", "None"],
)
async def test_chats_that_are_not_chat_ids_are_refused(
    caster: Broadcaster, chats: list[Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        await caster.start(chats, "hi")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": 0}, "a broadcast's window must be a whole number ≥ 1, not 0"),
        ({"window": 2.5}, "not 2.5"),
        ({"log_every": 0}, "log_every must be at least 1"),
        ({"grace": -1}, "grace must be 0 or more seconds"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    async def never(method: str, params: Any, paid: bool) -> Any:
        raise AssertionError("no send")

    with Outbox(tmp_path / "b.sqlite") as outbox, pytest.raises(ConfigError) as info:
        Broadcaster(outbox, never, **options)
    assert message in str(info.value)


def test_an_outbox_whose_folder_is_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"its folder .* does not exist"):
        Outbox(tmp_path / "none" / "broadcasts.sqlite")
    (tmp_path / "file").write_text("not a database")
    with pytest.raises(ConfigError, match="Cannot open the broadcast outbox"):
        Outbox(tmp_path / "file")


@pytest.mark.timeout(10)
def test_a_bot_that_cannot_pace_bulk_sends_is_refused() -> None:
    class FrameworkBot:  # an aiogram Bot has no request(); PTB's is its HTTP layer
        request = None

    class PlainRequest:
        async def request(self, method: str, params: dict) -> dict:
            return {}

    for bot in (object(), FrameworkBot(), PlainRequest()):
        with pytest.raises(ConfigError, match="needs tgrunner's Bot"):
            bot_sender(bot)


async def test_a_caller_cancelled_while_its_broadcast_is_written_leaves_it_sending(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        with Outbox(tmp_path / "broadcasts.sqlite") as outbox:
            async with Broadcaster(outbox, bot_sender(bot)) as caster:
                asking = asyncio.create_task(caster.start(range(1, 200_001), "hi"))
                await asyncio.sleep(0.05)  # inside the write of its 200,000 chats
                asking.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asking
                await tg.wait_for(lambda: caster.sending != [], timeout=20)
                [held] = caster.sending
                assert outbox.held(held)  # by this process's run, which sends it
