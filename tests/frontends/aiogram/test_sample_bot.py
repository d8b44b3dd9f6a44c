"""The sample bot (``examples/aiogram_bot.py``) on tgrunner answers, chat by chat, as under
aiogram's own sequential polling; errors its aiogram error handlers leave reach tgrunner's hook."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from types import ModuleType
from typing import Any

import pytest

from frontends.aiogram.helpers import SETTINGS, load_sample, running
from tgrunner.frontends.aiogram import (
    adapt,
)
from tgrunner.keys import default_keys
from tgrunner.runtime.runner import Runner
from tgrunner.testing import FakeTelegram


@pytest.fixture
def sample(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_sample(monkeypatch)


# -- the sample bot: tgrunner answers as aiogram's own sequential polling does ---------------------

_CHAT_METHODS = ("sendMessage", "editMessageText")


def transcript(tg: FakeTelegram, chat_id: int) -> list[str]:
    """What the bot wrote into a chat, in order: new messages and edits."""
    return [
        f"{r.method}: {r.params['text']}"
        for r in tg.requests
        if r.ok and r.method in _CHAT_METHODS and int(r.params.get("chat_id", 0)) == chat_id
    ]


def with_button(tg: FakeTelegram, chat_id: int, data: str, prefix: str = "") -> dict[str, Any]:
    """The latest bot message in the chat with a ``data`` button, whose text starts so."""
    for message in reversed(tg.replies(chat_id)):
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        if message.get("text", "").startswith(prefix) and any(
            b.get("callback_data") == data for row in rows for b in row
        ):
            return message
    raise AssertionError(f"no message with button {data!r} in chat {chat_id}")


# (who, "send" | "press", text or callback data, replies expected, text of the pressed message)
ALICE = [
    ("send", "/start", 1),
    ("press", "count:1", 1),
    ("press", "count:1", 1),
    ("press", "count:-1", 1),
    ("press", "show", 1),
    ("send", "/form", 1),
    ("send", "Alice", 1),
    ("send", "thirty", 1),
    ("send", "30", 1),
    ("press", "form:yes", 1),
    ("send", "/start", 1),
    ("send", "/fail", 1),
    ("send", "/boom", 0),
    ("send", "/slow", 2),
    ("send", "bye", 1),
]
BOB = [
    ("send", "/help", 1),
    ("send", "/form", 1),
    ("send", "/cancel", 1),
    ("send", "/cancel", 1),
    ("send", "hello <b>", 1),
    ("send", "/form", 1),
    ("send", "Bob", 1),
    ("send", "7", 1),
    ("press", "form:no", 1),
]
CAROL = [
    ("send", "/start", 1),
    ("press", "count:1", 1),
    ("press", "count:1", 1),
    ("press", "count:1", 1),
    ("press", "show", 1),
    ("send", "/slow", 2),
]
# Two users fill in the form in one group at once: USER_IN_CHAT keeps their states apart.
TEAM = [
    ("dave", "send", "/form", 1),
    ("erin", "send", "/form", 1),
    ("dave", "send", "Dave", 1),
    ("erin", "send", "Erin", 1),
    ("erin", "send", "25", 1),
    ("dave", "send", "40", 1),
    ("dave", "press", "form:yes", 1, "Save Dave"),
    ("erin", "press", "form:no", 1, "Save Erin"),
    ("dave", "send", "/start", 1),
    ("erin", "press", "count:1", 1),
    ("erin", "send", "/boom", 0),
    ("dave", "send", "/slow", 2),
]


async def play(tg: FakeTelegram, chat: Any, users: dict[str, Any], steps: list[tuple]) -> None:
    private = chat.type == "private"
    for step in steps:
        who, kind, arg, expect, *prefix = step if not private else ("me", *step)
        user = users[who]
        wanted = len(transcript(tg, chat.id)) + expect
        if kind == "send":
            user.send(arg, chat=None if private else chat)
        else:
            user.press(with_button(tg, chat.id, arg, *prefix), data=arg)
        if expect:
            await tg.wait_for(
                lambda n=wanted: len(transcript(tg, chat.id)) >= n,
                timeout=10,
            )


async def play_script(tg: FakeTelegram) -> dict[str, list[str]]:
    alice, bob = tg.user("Alice"), tg.user("Bob")
    carol = tg.user("Carol", language_code="de")
    dave, erin = tg.user("Dave"), tg.user("Erin")
    team = tg.group("Team", members=[dave, erin])
    await asyncio.gather(
        play(tg, alice.chat, {"me": alice}, ALICE),
        play(tg, bob.chat, {"me": bob}, BOB),
        play(tg, carol.chat, {"me": carol}, CAROL),
        play(tg, team, {"dave": dave, "erin": erin}, TEAM),
    )
    chats = {"alice": alice.chat, "bob": bob.chat, "carol": carol.chat, "team": team}
    return {name: transcript(tg, chat.id) for name, chat in chats.items()}


@pytest.mark.timeout(60)
async def test_sample_bot_answers_as_under_aiogram_sequential_polling(sample: ModuleType) -> None:
    async with FakeTelegram(seed=7) as tg:
        dp, bot = sample.create_dispatcher(), sample.create_bot(tg.token, tg.api_url)
        polling = asyncio.get_running_loop().create_task(
            dp.start_polling(bot, handle_as_tasks=False, handle_signals=False, polling_timeout=1)
        )
        expected = await play_script(tg)
        await dp.stop_polling()
        await polling

    async with FakeTelegram(seed=7) as tg:
        dp, bot = sample.create_dispatcher(), sample.create_bot()
        async with running((dp, bot), tg):
            got = await play_script(tg)

    assert got == expected
    assert expected["alice"][:6] == [
        "sendMessage: Hello, <b>Alice</b>! Count: 0",
        "editMessageText: Count: 1",
        "editMessageText: Count: 2",
        "editMessageText: Count: 1",
        "sendMessage: The count is 1.",
        "sendMessage: What is your name?",
    ]
    assert "sendMessage: Saved: Dave, 40." in expected["team"]
    assert expected["carol"][0] == "sendMessage: Hallo, <b>Carol</b>! Count: 0"


async def test_unhandled_errors_reach_the_error_hook_after_aiogram_error_handlers(
    tg: FakeTelegram, sample: ModuleType
) -> None:
    fe = adapt(
        (sample.create_dispatcher(), sample.create_bot()), token=tg.token, api_url=tg.api_url
    )
    errors: list[tuple[str, BaseException]] = []
    runner = Runner(
        fe.handler,
        token=fe.token,
        api_url=tg.api_url,
        settings=replace(SETTINGS, keys=fe.keys or default_keys),
        on_error=lambda update, exc: errors.append((update["message"]["text"], exc)),
        startup=fe.startup,
        shutdown=fe.shutdown,
    )
    task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
    alice = tg.user("Alice")
    for text in ("/fail", "/boom", "after"):
        alice.send(text)
    replies = await tg.wait_for_replies(alice, 2)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    # /fail is answered by the sample's aiogram error handler; only /boom is left unhandled.
    assert [r["text"] for r in replies] == [
        "Sorry, that failed: the input was bad",
        "You said: after",
    ]
    assert [(text, type(exc)) for text, exc in errors] == [("/boom", RuntimeError)]
    assert runner.stats.errors == 1
