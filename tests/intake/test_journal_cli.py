"""The journal through the command line: a poison update that kills the process three times
is quarantined and the bot goes on; ``tgrunner journal list|retry|drop`` show and release it;
a bad data dir or journal path, and a second process on one data dir, end with one line and
exit code 2."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from processes import end_started_bots, start_bot
from tgrunner.intake.journal import MAX_ATTEMPTS
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[1] / "bots"


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


async def tgrunner(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", *args,
        cwd=BOTS, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_poison_update_is_quarantined_and_released_by_the_cli(tg: FakeTelegram) -> None:
    alice, bob = tg.user("Alice"), tg.user("Bob")
    alice.send("before")
    alice.send("poison")
    alice.send("after")
    bob.send("hello")
    for attempt in range(MAX_ATTEMPTS):
        bot = await start_bot(tg, "poison_bot:router", cwd=BOTS)
        code, err = await bot.finish(timeout=30)
        assert code == -signal.SIGKILL, (attempt, err)
    bot = await start_bot(tg, "poison_bot:router", cwd=BOTS)
    await bot.wait_for_line("quarantined")
    await tg.wait_for(lambda: "after" in [m["text"] for m in tg.replies(alice)], timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    texts = [m["text"] for m in tg.replies(alice)]
    assert texts.count("after") == 1 and "before" in texts  # the chat goes on, in order
    assert texts.index("before") < texts.index("after")
    # Each kill came within 100 ms of Bob's reply, before its finish mark was written: it may
    # be answered again (the contract's bound), and is never lost.
    assert set(m["text"] for m in tg.replies(bob)) == {"hello"}

    code, out, err = await tgrunner("journal", "list")
    assert code == 0, err
    assert "0 update(s) waiting, 1 quarantined" in out
    assert f"{MAX_ATTEMPTS} attempts" in out and "message chat" in out
    assert f"{MAX_ATTEMPTS} attempts" in out

    code, out, _ = await tgrunner("journal", "retry")
    assert code == 2  # nothing named
    code, out, err = await tgrunner("journal", "retry", "--all")
    assert (code, out.strip()) == (
        0,
        "1 quarantined update(s) put back; they are handled at the next start",
    ), err
    code, out, _ = await tgrunner("journal", "list")
    assert "1 update(s) waiting, 0 quarantined" in out


async def test_drop_forgets_a_quarantined_update(tg: FakeTelegram, data_dir: Path) -> None:
    from tgrunner.intake.journal import Journal

    bot_dir = data_dir / tg.token.partition(":")[0]
    bot_dir.mkdir()
    journal = Journal(bot_dir / "journal.sqlite3", bot_id=int(tg.token.partition(":")[0]))
    await journal.put([{"update_id": 5, "message": {"text": "x", "chat": {"id": 1}}}])
    for _ in range(MAX_ATTEMPTS):
        journal.started(5)
    await journal.close()
    code, out, err = await tgrunner("journal", "list", "--token", tg.token)
    # Quarantine happens when the journal is next opened by the runtime or a release.
    assert code == 0 and "1 update(s) waiting, 0 quarantined" in out, err
    code, out, err = await tgrunner("journal", "drop", "5", "--bot-id", bot_dir.name)
    assert code == 0 and out.strip() == "1 quarantined update(s) dropped", err
    code, out, _ = await tgrunner("journal", "list")
    assert "0 update(s) waiting, 0 quarantined" in out


async def test_bad_places_fail_with_one_line(tg: FakeTelegram, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    base = ("run", "echo_bot:router", "--api-url", tg.api_url, "--token", tg.token)
    cases = [
        ((*base, "--data-dir", str(blocker / "data")), "Cannot create the data dir"),
        ((*base, "--journal", str(tmp_path / "missing" / "j.db")), "does not exist"),
        ((*base, "--journal", "x", "--no-journal"), "not allowed with argument"),
        (("journal", "list", "--data-dir", str(tmp_path)), "holds the journals of 0 bots"),
    ]
    for args, message in cases:
        code, _, err = await tgrunner(*args)
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "missing").exists()


@pytest.mark.slow
async def test_a_second_process_on_one_data_dir_is_refused(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "echo_bot:router", cwd=BOTS)
    code, _, err = await tgrunner(
        "run", "echo_bot:router", "--api-url", tg.api_url, "--token", tg.token
    )
    assert code == 2, err
    assert "Another process (pid" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
