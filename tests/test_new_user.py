"""A new user's first hour, as the README tells it (issue 8's acceptance script).

Everything runs in a fresh folder, the way a user works: the README's own bot (`mybot.py`,
taken from the README's code block, so the README cannot drift from what works), and the
aiogram and PTB quickstart layouts under the names their docs give them (`quick.py`,
`echobot.py`). Only commands the README shows are used: `tgrunner chat` in a real terminal
(tmux), `tgrunner fake-telegram` driven over its control API by a script, `tgrunner run` on
`quick:dp`, `quick:main` and `echobot:main`, and a handler given as the target, refused.
The README's own tests (section "Test your bot") run in tests/testing/test_examples.py,
and tests/cli and tests/testing/chat hold the finer tests of each command.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from control_client import Control, Fake, fake_telegram
from processes import BotProcess
from terminal import Pane, needs_tmux

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
BOTS = ROOT / "tests" / "bots"


def readme_bot() -> str:
    """The README's native bot: the python block that starts with ``# mybot.py``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [bot] = [block for block in blocks if block.startswith("# mybot.py\n")]
    return bot


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder: mybot.py from the README, aiogram's quick.py, PTB's echobot.py."""
    (tmp_path / "mybot.py").write_text(readme_bot(), encoding="utf-8")
    shutil.copy(BOTS / "aiogram_quick.py", tmp_path / "quick.py")
    shutil.copy(BOTS / "ptb_echobot.py", tmp_path / "echobot.py")
    return tmp_path


def user_env(fake: Fake) -> dict[str, str]:
    """This process's environment now (with the test's data dir), the token in BOT_TOKEN."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "BOT_TOKEN": fake.token}


@asynccontextmanager
async def bot_run(fake: Fake, target: str, cwd: Path, *extra: str) -> AsyncIterator[BotProcess]:
    """``tgrunner run TARGET --api-url <the fake>`` with the token in ``BOT_TOKEN``, as the
    README says; SIGTERM (by PID) at the end, which must be a clean stop (exit code 0)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", target, "--api-url", fake.api_url, *extra,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=user_env(fake),
    )  # fmt: skip
    bot = BotProcess(proc)
    try:
        yield bot
    finally:
        if proc.returncode is None:
            bot.send_signal(signal.SIGTERM)
        code, log = await bot.finish(timeout=40)
    assert code == 0, log
    assert "Traceback" not in log
    assert "stopped (clean)" in log, log


@needs_tmux
def test_the_readme_bot_answers_in_tgrunner_chat_in_a_real_terminal(project: Path) -> None:
    pane = Pane([sys.executable, "-m", "tgrunner", "chat", "mybot:router"], cwd=project)
    try:
        pane.wait("Quit with /quit, Ctrl-D or Ctrl-C.")
        pane.type("/start")
        pane.wait("bot: Hello!")
        pane.type("anyone there?")
        pane.wait("bot: anyone there?")
        pane.wait_for_prompt()
        pane.send("C-c")
        screen = pane.wait("EXIT=")
    finally:
        pane.close()
    assert "EXIT=0" in screen, screen
    assert "Traceback" not in screen


async def say(control: Control, user: dict, text: str) -> list[dict]:
    """Send ``text`` as ``user``; the bot's replies to it (a long poll, no sleep)."""
    sent = await control.ok("POST", "/send", {"user": user["id"], "text": text})
    answer = await control.replies(user["chat_id"], sent["cursor"], wait=40)
    assert answer["replies"], f"no reply to {text!r}"
    return list(answer["replies"])


async def test_a_script_drives_the_readme_bot_over_the_control_api(project: Path) -> None:
    async with fake_telegram() as fake, aiohttp.ClientSession() as session:
        control = Control(session, fake.api_url)
        alice = await control.user("Alice", username="alice")
        async with bot_run(fake, "mybot:router", project, "--no-journal") as bot:
            [hello] = await say(control, alice, "/start")
            [echo] = await say(control, alice, "how are you?")
            await bot.wait_for_line("· native · polling")
        assert hello["text"] == "Hello!"
        assert echo["text"] == "how are you?"
        code, stderr = await fake.stop()
    assert code == 0, stderr


@pytest.mark.parametrize(
    ("target", "start_reply"),
    [
        ("quick:dp", "Hello, <b>Alice Smith</b>!"),
        ("quick:main", "Hello, <b>Alice Smith</b>!"),
        ("echobot:main", "Hi "),
    ],
)
async def test_the_aiogram_and_ptb_quickstarts_run_unchanged(
    project: Path, data_dir: Path, target: str, start_reply: str
) -> None:
    async with fake_telegram() as fake, aiohttp.ClientSession() as session:
        control = Control(session, fake.api_url)
        alice = await control.user("Alice", last_name="Smith")
        async with bot_run(fake, target, project) as bot:
            [hello] = await say(control, alice, "/start")
            [echo] = await say(control, alice, "ping")
        assert hello["text"].startswith(start_reply), hello
        assert echo["text"] == "ping"
        front_end = "ptb" if target.startswith("echobot") else "aiogram"
        assert f"· {front_end} · polling {fake.api_url} · journal {data_dir}" in bot.log
        if target == "quick:dp":
            assert "created" in bot.log and "BOT_TOKEN" in bot.log  # tgrunner made the Bot
        await fake.stop()


async def test_a_handler_given_as_the_target_is_refused_and_loses_nothing(project: Path) -> None:
    async with fake_telegram() as fake, aiohttp.ClientSession() as session:
        control = Control(session, fake.api_url)
        alice = await control.user("Alice")
        waiting = await control.ok("POST", "/send", {"user": alice["id"], "text": "/start"})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tgrunner", "run", "mybot:echo", "--api-url", fake.api_url,
            cwd=project,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=user_env(fake),
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        message = err.decode()
        assert proc.returncode == 2, message
        assert "Traceback" not in message and not out
        assert len(message.strip().splitlines()) == 1, message
        assert "mybot:router" in message  # the hint names the Router to point at
        # Nothing was fetched, so nothing was confirmed: the real bot answers what waited.
        async with bot_run(fake, "mybot:router", project, "--no-journal"):
            answer = await control.replies(alice["chat_id"], waiting["cursor"], wait=40)
        assert [r["text"] for r in answer["replies"]] == ["Hello!"]
        await fake.stop()


def test_the_readme_shows_only_the_token_in_the_environment() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("tgrunner run ")]
    assert commands, "the README shows no tgrunner run command"
    assert not [line for line in commands if "--token" in line], commands
