"""``tgrunner chat`` in a real terminal: tmux runs it in a pane, the test types with
``send-keys`` and reads the screen with ``capture-pane`` until the expected text shows (polled,
within a deadline: the screen is the only output a terminal gives).

Each test has its own tmux server on a socket in its own temporary folder (``-S``), killed and
removed at the end, so nothing is left behind and other tmux users are not disturbed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from terminal import Pane, needs_tmux

BOTS = Path(__file__).parent.parent.parent / "bots"

pytestmark = [pytest.mark.slow, needs_tmux]


@pytest.fixture
def pane() -> Iterator[Pane]:
    pane = Pane([sys.executable, "-m", "tgrunner", "chat", "chat_bot:router"], cwd=BOTS)
    try:
        pane.wait("Quit with /quit, Ctrl-D or Ctrl-C.")
        pane.wait(lambda s: s.rstrip().endswith("You>"))
        yield pane
    finally:
        pane.close()


def _after(lines: list[str], first: str) -> list[str]:
    return lines[lines.index(first) :]


def test_a_conversation_in_a_terminal(pane: Pane) -> None:
    pane.type("hi")
    pane.wait("bot: You said: hi")
    pane.type("/start")
    pane.wait("  <Docs: https://example.org/docs>")
    pane.type("/press 1")
    pane.wait("bot (edited): You chose Yes")
    pane.type("/draft")
    pane.wait("bot (edited): final")
    # Each line waits for the one before it: type-ahead would be echoed by the terminal
    # before the prompt, as in any shell.
    pane.type("/as Bob")
    pane.wait("-- now talking as Bob, in a private chat with the bot")
    pane.type("hello")
    pane.wait("bot: Bob said: hello")
    pane.type("/group Friends")
    pane.wait("-- now talking as Bob, in the group Friends")
    pane.type("hey")
    pane.wait("bot: Bob said in Friends: hey")
    pane.type("/photo cap")
    pane.wait("bot: Bob sent a photo: cap")
    pane.type("/edit new caption")
    pane.wait("bot: Bob edited: new caption")
    pane.type("/quit")
    pane.wait("MODES=")
    assert _after(pane.lines(), "You> hi") == [
        "You> hi",
        "bot: You said: hi",
        "You> /start",
        "bot: Hello, You! Do you like it?",
        "  [1] Yes  [2] No",
        "  <Docs: https://example.org/docs>",
        "You> /press 1",
        "bot (answer): Noted",
        "bot (edited): You chose Yes",
        "You> /draft",
        "bot: draft",
        "bot (edited): final",
        "You> /as Bob",
        "-- now talking as Bob, in a private chat with the bot",
        "Bob> hello",
        "bot: Bob said: hello",
        "Bob> /group Friends",
        "-- now talking as Bob, in the group Friends",
        "Bob @ Friends> hey",
        "bot: Bob said in Friends: hey",
        "Bob @ Friends> /photo cap",
        "bot: Bob sent a photo: cap",
        "Bob @ Friends> /edit new caption",
        "bot: Bob edited: new caption",
        "Bob @ Friends> /quit",
        "-- stopping the bot",
        "EXIT=0",
        "MODES=icanon echo",
    ]


def test_a_reply_that_comes_while_typing_goes_above_the_line_being_typed(pane: Pane) -> None:
    pane.type("/later")  # the bot answers a second later
    pane.wait_for_prompt()
    pane.send("half a li")
    pane.wait(lambda s: s.rstrip().endswith("You> half a li"))
    assert "bot: later" not in pane.screen()
    pane.wait("bot: later")
    # The answer is on its own line, and the prompt with what was typed is drawn below it.
    assert pane.lines()[-2:] == ["bot: later", "You> half a li"]
    pane.send("ne", "Enter")
    pane.wait("bot: You said: half a line")


def test_ctrl_c_stops_the_bot_cleanly(pane: Pane) -> None:
    pane.type("hi")
    pane.wait("bot: You said: hi")
    pane.wait_for_prompt()
    pane.send("half typed")
    # CPython's readline loop checks for signals only when its wait for a key is interrupted:
    # a Ctrl-C that comes while it handles the previous key is seen at the next signal only.
    pane.wait(lambda s: s.rstrip().endswith("You> half typed"))
    pane.send("C-c")
    pane.wait("MODES=")
    assert pane.lines()[-3:] == ["-- stopping the bot", "EXIT=0", "MODES=icanon echo"]
    assert "Traceback" not in pane.screen()


def test_ctrl_d_stops_the_bot_cleanly(pane: Pane) -> None:
    pane.wait_for_prompt()
    pane.send("C-d")
    pane.wait("MODES=")
    assert pane.lines()[-3:] == ["-- stopping the bot", "EXIT=0", "MODES=icanon echo"]


def test_a_second_ctrl_c_stops_a_busy_bot_at_once(pane: Pane) -> None:
    pane.type("/slow")  # answers "working", then holds its handler for 30 s
    pane.wait("bot: working")
    pane.send("C-c")
    pane.wait("-- stopping the bot: 1 handler(s) still running get up to 10 s to finish")
    pane.send("C-c")
    pane.wait("MODES=")
    # A fast stop cancels the handler, so it is not a clean stop: exit code 1, as for run.
    assert pane.lines()[-4:] == ["^C", "-- stopping at once", "EXIT=1", "MODES=icanon echo"]
    assert "bot: done" not in pane.screen()
