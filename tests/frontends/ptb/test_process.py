"""A PTB bot under ``tgrunner run`` in its own process: SIGTERM under load loses and repeats
nothing and flushes the persistence; ``run()`` takes a factory and stops on SIGTERM; a second
signal exits at once; SIGKILL and a restart lose nothing."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram.ext import PicklePersistence

from chaos import kill_and_restart, stop_and_restart
from processes import MODES, end_started_bots, start_bot, start_python, unfinished
from replies import replied
from tgrunner.testing import FakeTelegram

HERE = Path(__file__).parent
TARGET = "ptb_sample:application"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


async def handled(path: str) -> int:
    """How many messages the sample counted in its persisted chat data."""
    chat_data = await PicklePersistence(path).get_chat_data()
    return sum(d.get("handled", 0) for d in chat_data.values())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(120)
async def test_sigterm_under_load_loses_and_repeats_nothing(
    tg: FakeTelegram, tmp_path: Path, mode: str
) -> None:
    persistence = str(tmp_path / "sample.pickle")

    async def saved(replied: int) -> None:
        # The stop flushed the persistence: every handled message is counted in the file.
        assert await handled(persistence) == replied

    result = await stop_and_restart(
        tg, TARGET, mode, cwd=HERE, per_chat=25,
        env={"PTB_SAMPLE_PERSISTENCE": persistence}, between=saved,
    )  # fmt: skip
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0
    # Read back on restart, then flushed again: the counts add up over both runs.
    assert await handled(persistence) == sum(1 for r in tg.calls("sendMessage") if r.ok)


@pytest.mark.timeout(60)
async def test_run_takes_a_factory_and_stops_on_sigterm(tg: FakeTelegram) -> None:
    tg.user("Alice").send("hello")
    code = (
        "import ptb_sample\n"
        "from tgrunner.frontends.ptb import run\n"
        f"raise SystemExit(run(ptb_sample.build, token={tg.token!r}, api_url={tg.api_url!r}))\n"
    )
    bot = await start_python(code, cwd=HERE)
    await tg.wait_until_polling(timeout=30)
    await tg.wait_for(lambda: replied(tg) == 1, timeout=10)
    bot.send_signal(signal.SIGTERM)
    exit_code, err = await bot.finish()
    assert exit_code == 0, err
    assert "Traceback" not in err
    assert tg.pending_updates == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(60)
async def test_second_signal_exits_at_once(tg: FakeTelegram, mode: str) -> None:
    alice = tg.user("Alice")
    alice.send("/slow")
    bot = await start_bot(tg, TARGET, "--grace", "60", *MODES[mode], cwd=HERE)
    await tg.wait_for_replies(alice, 1, timeout=20)  # "started": the handler is running
    bot.send_signal(signal.SIGTERM)
    # The first signal waits for the handler (up to the 60 s grace); the second must not. It is
    # sent once the first was seen: a signal sent while the same one is pending is merged.
    await bot.wait_for_line("received SIGTERM")
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish(timeout=10)
    assert code == 1, err
    assert "Traceback" not in err
    # The unfinished update was not confirmed: it is still pending at Telegram.
    assert unfinished(tg, mode) == 1
    # Only the runner's own handler tasks count: PTB's long-lived tasks are not stragglers.
    assert "ignore cancellation" not in err


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(300)
async def test_five_sigkills_under_load_lose_nothing(tg: FakeTelegram, mode: str) -> None:
    result = await kill_and_restart(tg, TARGET, mode, cwd=HERE)
    assert (result.tally.lost, result.tally.violations) == (0, 0)
    assert result.tally.duplicates <= result.bound, result
