"""What the terminal chat shows of messages and keyboards (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from tgrunner.testing.chat.render import Button, block, describe, keyboard_of

_FILE = {"file_id": "x", "file_unique_id": "y"}


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ({"text": "hello"}, "hello"),
        ({"text": "two\nlines"}, "two\nlines"),
        ({"photo": [_FILE]}, "[photo]"),
        ({"photo": [_FILE], "caption": "a cat"}, "[photo] a cat"),
        ({"document": _FILE | {"file_name": "report.pdf"}}, "[document report.pdf]"),
        ({"document": _FILE, "caption": "see"}, "[document] see"),
        # An animation carries a document too: it is shown as the animation.
        ({"animation": _FILE, "document": _FILE | {"file_name": "a.mp4"}}, "[animation]"),
        ({"audio": _FILE | {"performer": "Artist", "title": "Song"}}, "[audio Artist – Song]"),
        ({"audio": _FILE}, "[audio]"),
        ({"voice": _FILE | {"duration": 3}}, "[voice 3 s]"),
        ({"video": _FILE | {"duration": 10}, "caption": "clip"}, "[video 10 s] clip"),
        ({"video_note": _FILE | {"duration": 5}}, "[video note 5 s]"),
        ({"sticker": _FILE | {"emoji": "👍"}}, "[sticker 👍]"),
        ({"sticker": _FILE}, "[sticker]"),
        ({"location": {"latitude": 51.5, "longitude": -0.12}}, "[location 51.5, -0.12]"),
        (
            {
                "venue": {"title": "Big Ben", "address": "London"},
                "location": {"latitude": 51.5, "longitude": -0.12},
            },
            "[venue Big Ben, London]",
        ),
        (
            {"contact": {"first_name": "Ann", "phone_number": "+1555"}},
            "[contact Ann +1555]",
        ),
        (
            {"poll": {"question": "Lunch?", "options": [{"text": "pizza"}, {"text": "soup"}]}},
            "[poll Lunch? (pizza / soup)]",
        ),
        (
            {"poll": {"question": "2+2?", "type": "quiz", "options": [{"text": "4"}]}},
            "[quiz 2+2? (4)]",
        ),
        ({"dice": {"emoji": "🎲", "value": 4}}, "[dice 🎲 4]"),
        ({"invoice": {"title": "Coffee"}}, "[invoice Coffee]"),
        ({"new_chat_members": []}, "[message]"),
    ],
)
def test_describe_shows_text_or_the_media_kind_with_its_caption(
    message: dict[str, Any], shown: str
) -> None:
    base = {"message_id": 1, "chat": {"id": 1, "type": "private"}, "date": 0}
    assert describe(base | message) == shown


def test_block_aligns_further_lines_under_the_first() -> None:
    assert block("bot: ", "one\ntwo") == ["bot: one", "     two"]
    assert block("bot: ", "") == ["bot: "]


def test_an_inline_keyboard_numbers_callback_buttons_and_shows_links_unnumbered() -> None:
    markup = {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "y"}, {"text": "No", "callback_data": "n"}],
            [
                {"text": "Docs", "url": "https://example.org"},
                {"text": "Maybe", "callback_data": "m"},
            ],
            [{"text": "Share", "switch_inline_query": ""}],
        ]
    }
    keyboard = keyboard_of(markup)
    assert keyboard is not None and keyboard.kind == "inline"
    assert keyboard.lines == (
        "[1] Yes  [2] No",
        "<Docs: https://example.org>  [3] Maybe",
        "(Share: switch inline query)",
    )
    assert keyboard.buttons == (
        Button("Yes", "callback", "y"),
        Button("No", "callback", "n"),
        Button("Maybe", "callback", "m"),
    )


def test_a_reply_keyboard_numbers_every_button_and_presses_send_the_label() -> None:
    markup = {
        "keyboard": [[{"text": "Red"}, "Blue"], [{"text": "Green"}]],
        "one_time_keyboard": True,
    }
    keyboard = keyboard_of(markup)
    assert keyboard is not None
    assert keyboard.kind == "reply" and keyboard.one_time
    assert keyboard.lines == ("[1] Red  [2] Blue", "[3] Green")
    assert [b.value for b in keyboard.buttons] == ["Red", "Blue", "Green"]
    assert {b.kind for b in keyboard.buttons} == {"text"}


@pytest.mark.parametrize(
    ("markup", "kind"),
    [
        (None, None),
        ("not a dict", None),
        ({}, None),
        ({"inline_keyboard": []}, None),
        ({"force_reply": True}, None),
        ({"remove_keyboard": True}, "remove"),
    ],
)
def test_markup_without_buttons(markup: Any, kind: str | None) -> None:
    keyboard = keyboard_of(markup)
    assert (keyboard.kind if keyboard is not None else None) == kind
    if keyboard is not None:
        assert keyboard.buttons == ()


def test_labels_stay_on_one_line() -> None:
    keyboard = keyboard_of({"inline_keyboard": [[{"text": "a\nb", "callback_data": "x"}]]})
    assert keyboard is not None and keyboard.lines == ("[1] a b",)
