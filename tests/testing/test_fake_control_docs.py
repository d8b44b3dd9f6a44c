"""docs/control-api.md does what it says: its bot (the first Python block) runs under
``tgrunner run`` against ``tgrunner fake-telegram``, and its script (the second) drives it over
the control API and prints the output the document shows (the block after it)."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest

from control_client import ENV, fake_telegram
from processes import BotProcess

pytestmark = pytest.mark.slow

DOC = Path(__file__).parents[2] / "docs" / "control-api.md"


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of a Markdown text: (language, body)."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


async def test_the_documented_bot_and_script_work(tmp_path: Path) -> None:
    found = blocks(DOC.read_text())
    python = [i for i, (lang, _) in enumerate(found) if lang == "python"]
    assert len(python) == 2, "the document should hold the bot, then the script"
    bot_code, script = found[python[0]][1], found[python[1]][1]
    lang, expected = found[python[1] + 1]
    assert lang == "", "the script's output should follow it"
    (tmp_path / "menu.py").write_text(bot_code)

    async with fake_telegram() as fake:
        # As documented: the token comes from the environment, not the command line.
        bot = BotProcess(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tgrunner", "run", "menu:router",
                "--api-url", fake.api_url, "--no-journal",
                cwd=tmp_path,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={**ENV, "BOT_TOKEN": fake.token},
            )
        )  # fmt: skip
        try:
            run = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**ENV, "CONTROL_URL": fake.control_url},
            )  # fmt: skip
            async with asyncio.timeout(45):
                out, err = await run.communicate()
            assert run.returncode == 0, err.decode()
            assert out.decode() == expected
        finally:
            if bot.proc.returncode is None:
                bot.send_signal(signal.SIGTERM)
            code, log = await bot.finish(timeout=30)
        assert code == 0, log
        assert "Traceback" not in log
        code, stderr = await fake.stop()
    assert code == 0, stderr
