"""The intake journal: durable before confirmation, replayed after a crash, and bound to its
bot. Runs on real SQLite files and, end to end, against FakeTelegram."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replies import tally
from tgrunner.errors import ConfigError
from tgrunner.frontends.native.router import Context, Router
from tgrunner.intake.journal import Journal
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parent / "bots"


def updates(*ids: int) -> list[dict[str, object]]:
    return [{"update_id": i, "message": {"text": str(i)}} for i in ids]


def test_put_is_durable_and_unfinished_replays_in_order(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = Journal(path, bot_id=1)
    assert j.put(updates(5, 6, 7)) == updates(5, 6, 7)
    assert j.put(updates(6, 7, 8)) == updates(8)  # already journaled ones are refused
    j.finished(6)
    j.flush()
    # No close(): as after a crash, a new process opens the same file.
    again = Journal(path, bot_id=1)
    assert [u["update_id"] for u in again.unfinished()] == [5, 7, 8]
    assert again.highest == 8
    j.close()
    again.close()
    again.close()  # twice is fine


def test_another_bots_journal_is_refused(tmp_path: Path) -> None:
    Journal(tmp_path / "j.db", bot_id=1).close()
    with pytest.raises(ConfigError, match="belongs to bot 1"):
        Journal(tmp_path / "j.db", bot_id=2)


def test_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="Cannot open the intake journal"):
        Journal(blocker / "j.db", bot_id=1)


def test_bad_sync_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'normal' or 'full'"):
        Journal(tmp_path / "j.db", bot_id=1, sync="sometimes")


@settings(max_examples=50, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(1, 400), max_size=20), max_size=10),
    data=st.data(),
)
def test_unfinished_is_exactly_put_minus_finished(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]], data: st.DataObject
) -> None:
    """Property: after any batches and finish marks, a reopened journal holds exactly the
    journaled updates that were not finished (flushed), in id order."""
    path = tmp_path_factory.mktemp("j") / "j.db"
    j = Journal(path, bot_id=7)
    journaled: set[int] = set()
    for batch in batches:
        fresh = j.put(updates(*sorted(set(batch))))
        journaled |= {u["update_id"] for u in fresh}  # type: ignore[misc]
    done = data.draw(st.sets(st.sampled_from(sorted(journaled)))) if journaled else set()
    for uid in done:
        j.finished(uid)
    j.flush()
    reopened = Journal(path, bot_id=7)
    assert [u["update_id"] for u in reopened.unfinished()] == sorted(journaled - done)
    j.close()
    reopened.close()


async def test_runner_with_journal_confirms_and_finishes(tmp_path: Path) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    async with FakeTelegram() as tg:
        opts = PollingOptions(timeout=1, journal=str(tmp_path / "j.db"))
        runner = Runner(router, token=tg.token, api_url=tg.api_url, settings=Settings(polling=opts))
        task = asyncio.create_task(runner.serve(install_signals=False))
        users = [tg.user(f"J{i}") for i in range(5)]
        sent: dict[int, list[str]] = {}
        for n in range(50):
            u = users[n % 5]
            u.send(str(n))
            sent.setdefault(u.chat.id, []).append(str(n))
        await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=20)
        runner.stop()
        assert await asyncio.wait_for(task, 10) == 0
        result = tally(sent, tg.requests)
        assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
        assert tg.pending_updates == 0
    assert Journal(tmp_path / "j.db", bot_id=runner.bot.id).unfinished() == []


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigkill_with_journal_replays_what_was_in_flight(tmp_path: Path) -> None:
    journal = str(tmp_path / "intake.db")
    async with FakeTelegram() as tg:
        users = [tg.user(f"K{i}") for i in range(40)]
        sent: dict[int, list[str]] = {}
        for n in range(400):
            u = users[n % 40]
            u.send(str(n))
            sent.setdefault(u.chat.id, []).append(str(n))

        async def start() -> asyncio.subprocess.Process:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tgrunner", "run", "echo_bot:router",
                "--api-url", tg.api_url, "--token", tg.token, "--journal", journal,
                cwd=BOTS, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            await tg.wait_until_polling(timeout=30)
            return proc

        def replied() -> int:
            return sum(1 for r in tg.requests if r.method == "sendMessage" and r.ok)

        bot = await start()
        try:
            await tg.wait_for(lambda: replied() >= 100, timeout=30)
            bot.kill()
            await bot.wait()
            assert replied() < 400
            # Telegram may have forgotten more than finished: the journal holds the rest.
            bot = await start()
            await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=60)
            bot.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(bot.communicate(), 30)
            assert bot.returncode == 0, err
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        result = tally(sent, tg.requests)
        assert result.lost == 0
        # At most what was in flight (bounded by the scheduler's max_pending) runs twice.
        assert result.duplicates <= Settings().scheduler.max_pending
        assert result.violations == 0
