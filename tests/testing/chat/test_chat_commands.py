"""How the terminal chat reads a typed line (pure)."""

from __future__ import annotations

import pytest

from tgrunner.testing.chat.commands import COMMANDS, Command, CommandError, help_lines, parse


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello", Command("say", "hello")),
        ("  spaced  ", Command("say", "  spaced  ")),
        ("hi\n", Command("say", "hi")),
        # Bot commands, /help included, go to the bot.
        ("/start", Command("say", "/start")),
        ("/help", Command("say", "/help")),
        ("/start@test_bot deep", Command("say", "/start@test_bot deep")),
        ("/pressure 1", Command("say", "/pressure 1")),
        # // escapes a chat command's name.
        ("//press 1", Command("say", "/press 1")),
        ("//", Command("say", "/")),
        ("/press 2", Command("press", number=2)),
        ("/PRESS 3", Command("press", number=3)),
        ("/as Bob", Command("as", "Bob")),
        ("/as Mary Ann ", Command("as", "Mary Ann")),
        ("/group Friends", Command("group", "Friends")),
        ("/private", Command("private")),
        ("/photo", Command("photo")),
        ("/photo a cat", Command("photo", "a cat")),
        ("/document notes.txt", Command("document", "notes.txt")),
        ("/sticker 🎉", Command("sticker", "🎉")),
        ("/location", Command("location")),
        ("/location 48.85, 2.29", Command("location", point=(48.85, 2.29))),
        ("/edit new text", Command("edit", "new text")),
        ("/quit", Command("quit")),
        ("/?", Command("?")),
    ],
)
def test_parse(line: str, command: Command) -> None:
    assert parse(line) == command


@pytest.mark.parametrize("line", ["", "   ", "\n"])
def test_a_blank_line_is_nothing(line: str) -> None:
    assert parse(line) is None


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("/press", "/press takes a button number from 1"),
        ("/press 0", "/press takes a button number from 1"),
        ("/press one", "/press takes a button number from 1"),
        ("/as", "/as needs NAME, e.g. /as Bob"),
        ("/group  ", "/group needs NAME"),
        ("/edit", "/edit needs TEXT"),
        ("/location north", "/location takes a latitude and a longitude"),
        ("/location 1 2 3", "/location takes a latitude and a longitude"),
        ("/location 91 0", "the latitude is -90 to 90"),
        ("/location nan 0", "the latitude is -90 to 90"),
    ],
)
def test_bad_arguments_say_what_to_type(line: str, says: str) -> None:
    with pytest.raises(CommandError, match=None) as caught:
        parse(line)
    assert says in str(caught.value)


def test_help_lists_every_chat_command_and_the_escape() -> None:
    text = "\n".join(help_lines())
    for name in COMMANDS:
        assert f"/{name}" in text
    assert "//TEXT" in text
