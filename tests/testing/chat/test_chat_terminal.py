"""The chat's terminal in-process with piped streams: the transcript, logging kept off stdout,
and a bot that stops on its own in the middle of a chat."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
from typing import Any

import pytest

from bots.chat_bot import router
from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.intake.options import IntakeOptions
from tgrunner.settings import Settings
from tgrunner.testing.chat.app import ChatApp
from tgrunner.testing.chat.terminal import Terminal, run_chat

STRICT = Settings(intake=IntakeOptions(journal=False))


def test_piped_lines_give_a_transcript_and_logs_go_to_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    out, err = io.StringIO(), io.StringIO()
    code = run_chat(
        router,
        settings=STRICT,
        stdin=io.StringIO("hi\n/draft\n/quit\nnot read\n"),
        stdout=out,
        stderr=err,
    )
    assert code == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("tgrunner chat: @test_") and "native front-end" in lines[0]
    assert lines[lines.index("You> hi") :] == [
        "You> hi",
        "bot: You said: hi",
        "You> /draft",
        "bot: draft",
        "bot (edited): final",
        "You> /quit",
        "-- stopping the bot",
    ]
    # Log records (the runtime's INFO line on stop) go to stderr, never among the chat's lines.
    assert "stopped (clean)" not in out.getvalue()
    assert "INFO tgrunner: stopped (clean)" in err.getvalue()


def test_ctrl_c_and_sigterm_reach_only_the_main_thread() -> None:
    # The kernel gives a process's signal to any thread not blocking it; the main thread
    # waits in input(), and only a signal it receives itself wakes it. So the bot's thread
    # (and the threads it starts, for DNS say) block SIGINT and SIGTERM.
    masks: list[set[signal.Signals]] = []

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, set()))
        masks.append(await asyncio.to_thread(signal.pthread_sigmask, signal.SIG_BLOCK, set()))
        await bot.send_message(update["message"]["chat"]["id"], "ok")

    out = io.StringIO()
    assert run_chat(handler, settings=STRICT, stdin=io.StringIO("hi\n"), stdout=out) == 0
    assert "bot: ok" in out.getvalue()
    assert len(masks) == 2
    for mask in masks:
        assert {signal.SIGINT, signal.SIGTERM} <= mask
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_a_bot_that_stops_on_its_own_ends_the_chat_with_its_error() -> None:
    app = ChatApp(router, settings=STRICT)
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as stdin, os.fdopen(write_end, "w") as writer:
        out = io.StringIO()
        terminal = Terminal(app, stdin=stdin, stdout=out, stderr=io.StringIO())
        show = app.emit

        def emit(lines: list[str]) -> None:
            show(lines)
            if "bot: You said: hi" in lines:
                # On the server's loop, while the chat is about to wait for the next line:
                # Telegram revokes the token, and an update lets the bot's long poll come
                # back and meet the 401 on the next one.
                tg, session = app.tg, app.session
                assert session is not None
                del tg.state.bots[tg.token]
                tg._routes.clear()
                session.user.send("again")

        app.emit = emit
        writer.write("hi\n")
        writer.flush()
        # The pipe stays open: the chat is waiting for a line when the bot stops, and ends.
        with pytest.raises(ConfigError, match="rejected the bot token"):
            terminal.run()
    assert out.getvalue().splitlines()[-1] == "-- the bot stopped"
