"""The chat session in-process: a real bot (tests/bots/chat_bot.py) runs against the chat's
embedded FakeTelegram over HTTP, and each typed line gives the lines the chat shows."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bots.chat_bot import router
from tgrunner.errors import ConfigError
from tgrunner.intake.options import IntakeOptions
from tgrunner.settings import Settings
from tgrunner.testing.chat.app import ChatApp

STRICT = Settings(intake=IntakeOptions(journal=False))


class Chat:
    """A started :class:`ChatApp` and every line it emitted."""

    def __init__(self, app: ChatApp, lines: list[str]) -> None:
        self.app = app
        self.lines = lines

    async def say(self, line: str) -> list[str]:
        """Type ``line``, wait for the bot to settle; the lines that came of it."""
        start = len(self.lines)
        assert await self.app.submit(line, settle=10)
        return self.lines[start:]


async def _started(settings: Settings = STRICT) -> tuple[ChatApp, list[str]]:
    lines: list[str] = []
    app = ChatApp(router, emit=lines.extend, settings=settings)
    await app.start()
    return app, lines


@pytest.fixture
async def chat() -> AsyncIterator[Chat]:
    app, lines = await _started()
    try:
        yield Chat(app, lines)
    finally:
        assert await app.stop() == 0


async def test_a_message_gets_the_bot_reply(chat: Chat) -> None:
    assert await chat.say("hi") == ["bot: You said: hi"]
    assert chat.app.frontend == "native"


async def test_an_inline_keyboard_is_numbered_and_a_press_shows_answer_and_edit(chat: Chat) -> None:
    assert await chat.say("/start") == [
        "bot: Hello, You! Do you like it?",
        "  [1] Yes  [2] No",
        "  <Docs: https://example.org/docs>",
    ]
    assert await chat.say("/press 2") == ["bot (answer): Noted", "bot (edited): You chose No"]
    # The edit removed the keyboard: nothing is left to press.
    assert await chat.say("/press 1") == ["-- no keyboard to press in this chat"]


async def test_press_checks_the_number(chat: Chat) -> None:
    assert await chat.say("/press 1") == ["-- no keyboard to press in this chat"]
    await chat.say("/start")
    assert await chat.say("/press 3") == ["-- no button 3: the latest keyboard has 2"]
    assert await chat.say("/press x") == ["-- /press takes a button number from 1, e.g. /press 1"]


async def test_a_reply_keyboard_button_sends_its_text_and_goes_when_one_time(chat: Chat) -> None:
    assert await chat.say("/menu") == ["bot: Pick a colour", "  keyboard: [1] Red  [2] Blue"]
    assert await chat.say("/press 2") == ["bot: You said: Blue"]
    assert await chat.say("/press 1") == ["-- no keyboard to press in this chat"]
    assert await chat.say("/hide") == ["bot: Keyboard hidden", "  (keyboard removed)"]


async def test_edits_and_deletions_by_the_bot(chat: Chat) -> None:
    assert await chat.say("/draft") == ["bot: draft", "bot (edited): final"]
    assert await chat.say("/gone") == ["bot: short-lived", "bot (deleted): short-lived"]


async def test_as_switches_users_in_the_same_kind_of_chat(chat: Chat) -> None:
    assert await chat.say("/as Bob") == ["-- now talking as Bob, in a private chat with the bot"]
    assert chat.app.session is not None and chat.app.session.prompt == "Bob> "
    assert await chat.say("hello") == ["bot: Bob said: hello"]
    await chat.say("/group Friends")
    assert chat.app.session.prompt == "Bob @ Friends> "
    assert await chat.say("hey") == ["bot: Bob said in Friends: hey"]
    # In a group, /as stays in the group: the new user joins it.
    assert await chat.say("/as Carol") == ["-- now talking as Carol, in the group Friends"]
    assert await chat.say("yo") == ["bot: Carol said in Friends: yo"]
    assert await chat.say("/private") == ["-- now talking as Carol, in a private chat with the bot"]
    # Bob again is the same user as before, not a new one.
    session = chat.app.session
    bob = session._users["bob"]
    await chat.say("/as bob")
    assert session.user is bob


async def test_a_message_to_another_chat_is_labelled(chat: Chat) -> None:
    await chat.say("/group Friends")
    assert await chat.say("/dm") == ["[You] bot: psst"]


async def test_photo_and_edit_of_the_users_own_messages(chat: Chat) -> None:
    assert await chat.say("/edit nothing yet") == ["-- nothing to edit: You sent nothing here yet"]
    assert await chat.say("/photo a cat") == ["bot: You sent a photo: a cat"]
    assert await chat.say("/edit a dog") == ["bot: You edited: a dog"]
    assert await chat.say("first") == ["bot: You said: first"]
    assert await chat.say("/edit second") == ["bot: You edited: second"]


async def test_other_media_reach_the_bot(chat: Chat) -> None:
    # The bot answers text only ("said: None" for media without a caption): what matters is
    # that each arrives as its kind.
    for line in ("/document notes.txt", "/sticker", "/location 48.85 2.29"):
        assert await chat.say(line) == ["bot: You said: None"]
    kinds = [next(k for k in u["message"] if k in ("document", "sticker", "location"))
             for u in chat.app.tg.population.updates]  # fmt: skip
    assert kinds == ["document", "sticker", "location"]


async def test_literal_chat_command_text_goes_to_the_bot(chat: Chat) -> None:
    assert await chat.say("//press 1") == ["bot: You said: /press 1"]


async def test_chat_commands_are_listed_by_question_mark(chat: Chat) -> None:
    shown = await chat.say("/?")
    assert shown[0] == "Chat commands:"
    assert any(line.strip().startswith("/press N") for line in shown)


async def test_failed_calls_of_the_bot_are_shown(chat: Chat) -> None:
    assert await chat.say("/fail") == ["bot (failed): sendMessage: Bad Request: chat not found"]


async def test_quit_ends_and_a_blank_line_does_nothing(chat: Chat) -> None:
    assert await chat.say("") == []
    assert not await chat.app.submit("/quit")


async def test_an_update_kind_the_bot_does_not_receive_is_named() -> None:
    polling = replace(STRICT.polling, allowed_updates=("message",))
    app, lines = await _started(replace(STRICT, polling=polling))
    chat = Chat(app, lines)
    try:
        await chat.say("/start")
        assert await chat.say("/press 1") == [
            "-- the bot does not receive callback_query updates (its allowed_updates leave "
            "them out)"
        ]
    finally:
        assert await app.stop() == 0


async def test_a_target_that_cannot_run_is_a_config_error_and_closes_everything() -> None:
    app = ChatApp("nosuch_module_here:thing", emit=lambda lines: None, settings=STRICT)
    with pytest.raises(ConfigError, match="nosuch_module_here"):
        await app.start()
    assert app.tg._server is None  # closed


async def test_only_the_chat_command_exports_the_fakes_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setenv first, so the test's end restores BOT_TOKEN as it was, however the chat set it.
    monkeypatch.setenv("BOT_TOKEN", "")
    monkeypatch.delenv("BOT_TOKEN")
    app, _ = await _started()
    assert await app.stop() == 0
    assert "BOT_TOKEN" not in os.environ  # a library user's environment is left alone
    app = ChatApp(router, settings=STRICT, export_token=True)
    await app.start()
    try:
        assert os.environ["BOT_TOKEN"] == app.tg.token
    finally:
        assert await app.stop() == 0
