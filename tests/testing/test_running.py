"""``tgrunner.testing.running``: a bot of any kind runs in-process against a FakeTelegram for a
block, from the first poll to a clean stop; its failures surface, its journal leaves nothing
behind; the sync form runs it from a thread and its exit does not wait out the long poll."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tgrunner import ConfigError, Context, Router
from tgrunner.client.bot import Bot
from tgrunner.intake.options import IntakeOptions
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram, Faults, running

echo = Router()


@echo.message()
async def _echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "?")


async def upper(update: dict[str, Any], bot: Bot) -> None:
    message = update["message"]
    await bot.call("sendMessage", chat_id=message["chat"]["id"], text=message["text"].upper())


BOT_MODULE = """
from tgrunner import Context, Router

router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply("module: " + (ctx.text or ""))


def create() -> Router:
    return router
"""


def exists(path: str | Path) -> bool:
    return Path(path).exists()


REVOKED = b'{"ok":false,"error_code":401,"description":"Unauthorized"}'


@pytest.fixture
def bot_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bot module, importable as ``running_sample_bot``."""
    (tmp_path / "running_sample_bot.py").write_text(textwrap.dedent(BOT_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "running_sample_bot"


async def test_a_router_runs_for_the_block_and_stops_cleanly(
    tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TGRUNNER_DATA_DIR")
    alice = tg.user("Alice")
    async with running(echo, tg) as runner:
        assert isinstance(runner, Runner)
        # Already polling: a message sent now is fetched without any wait of the test's own.
        assert tg.state.primary.long_poll is not None
        alice.send("hi")
        [reply] = await tg.wait_for_replies(alice, 1)
        assert reply["text"] == "hi"
        journal_dir = runner.settings.intake.data_dir
        assert journal_dir is not None
        assert exists(journal_dir)
    assert runner.stats.finished == 1
    assert tg.pending_updates == 0  # the clean stop confirmed what was handled
    assert not exists(journal_dir)  # the temporary journal is gone
    assert not exists(tmp_path / ".tgrunner")  # and none was made in the test's folder


async def test_a_plain_handler_and_import_strings_run_too(
    tg: FakeTelegram, bot_module: str
) -> None:
    alice = tg.user("Alice")
    async with running(upper, tg):
        alice.send("shout")
        [reply] = await tg.wait_for_replies(alice, 1)
    assert reply["text"] == "SHOUT"
    for target in (f"{bot_module}:router", f"{bot_module}:create"):
        async with running(target, tg):
            alice.send(target)
            replies = await tg.wait_for_replies(alice, len(tg.replies(alice)) + 1)
        assert replies[-1]["text"] == f"module: {target}"


async def test_settings_that_name_a_data_dir_keep_the_journal_there(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    settings = Settings(intake=IntakeOptions(data_dir=str(tmp_path / "data")))
    async with running(echo, tg, settings=settings) as runner:
        assert runner.settings.intake.data_dir == str(tmp_path / "data")
    bot_id = tg.token.partition(":")[0]
    assert exists(tmp_path / "data" / bot_id / "journal.sqlite3")


async def test_strict_offsets_need_no_folder(tg: FakeTelegram) -> None:
    settings = Settings(intake=IntakeOptions(journal=False))
    async with running(echo, tg, settings=settings) as runner:
        assert runner.settings.intake.data_dir is None
        alice = tg.user("Alice")
        alice.send("x")
        await tg.wait_for_replies(alice, 1)


async def test_a_bot_that_cannot_start_fails_the_enter(tg: FakeTelegram) -> None:
    async with Bot(tg.token, api_url=tg.api_url) as client:
        await client.set_webhook("http://127.0.0.1:9/hook")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="webhook is set"):
        async with running(echo, tg):
            pytest.fail("the block ran although the bot could not start")
    assert time.monotonic() - started < 5  # at once, not after the start timeout


async def test_a_bot_that_never_polls_times_out_naming_the_calls(tg: FakeTelegram) -> None:
    tg.pause()  # getMe is held: the bot never gets to poll
    try:
        with pytest.raises(TimeoutError, match=r"^waited 0\.5 s for the bot to poll: "):
            async with running(echo, tg, start_timeout=0.5):
                pytest.fail("the block ran although the bot never polled")
    finally:
        tg.resume()


async def test_a_failure_of_the_bot_during_the_block_is_raised_at_the_end(
    tg: FakeTelegram,
) -> None:
    alice = tg.user("Alice")

    async def revoke_the_token() -> None:
        async with running(echo, tg) as runner:
            tg.faults = Faults(answer=REVOKED, methods=frozenset({"getUpdates"}))
            alice.send("wake the long poll")  # the next poll gets the 401
            await tg.wait_for(lambda: runner.stats.finished == 1)
            await tg.wait_for_call("getUpdates", where=lambda r: r.response == REVOKED)

    with pytest.raises(ConfigError, match="401 Unauthorized"):
        await revoke_the_token()


async def test_the_blocks_own_error_goes_on_after_a_clean_stop(tg: FakeTelegram) -> None:
    holder: list[Runner] = []

    async def fail_in_the_block() -> None:
        async with running(echo, tg) as runner:
            holder.append(runner)
            raise KeyError("from the test")

    with pytest.raises(KeyError, match="from the test"):
        await fail_in_the_block()
    data_dir = holder[0].settings.intake.data_dir
    assert data_dir is not None
    assert not exists(data_dir)  # the stop ran to its end


async def test_handlers_outliving_the_grace_make_the_exit_fail(tg: FakeTelegram) -> None:
    entered = asyncio.Event()

    async def stuck(update: dict[str, Any], bot: Bot) -> None:
        entered.set()
        await asyncio.sleep(60)

    async def hang() -> None:
        async with running(stuck, tg, settings=Settings(grace=0.2)):
            tg.user("Alice").send("hang")
            await asyncio.wait_for(entered.wait(), 10)

    with pytest.raises(RuntimeError, match=r"did not stop cleanly .*0\.2 s grace"):
        await hang()


async def test_a_running_block_is_single_use(tg: FakeTelegram) -> None:
    block = running(echo, tg)
    async with block:
        pass
    with pytest.raises(RuntimeError, match="runs once"):
        async with block:
            pass


async def test_a_fake_that_is_not_serving_is_refused() -> None:
    with pytest.raises(RuntimeError, match="FakeTelegram is not serving"):
        async with running(echo, FakeTelegram()):
            pass


async def test_the_async_form_works_with_a_fake_in_thread_mode() -> None:
    with FakeTelegram().in_thread() as tg:
        alice = tg.user("Alice")
        async with running(echo, tg):
            alice.send("across loops")
            [reply] = await tg.wait_for_replies(alice, 1)
        assert reply["text"] == "across loops"


# -- the sync form --------------------------------------------------------------------------------


def test_the_sync_form_runs_the_bot_from_a_thread_and_exits_at_once() -> None:
    with FakeTelegram().in_thread() as tg:
        alice = tg.user("Alice")
        with running(echo, tg) as runner:
            # The default 30 s long poll: the exit must not wait for it to come back.
            assert runner.settings.polling.timeout == 30
            alice.send("sync")
            [reply] = tg.wait_for_replies_sync(alice, 1)
            tg.wait_until_polling_sync()
            left_at = time.monotonic()
        exited_in = time.monotonic() - left_at
    assert reply["text"] == "sync"
    assert runner.stats.finished == 1
    assert exited_in < 5, f"the exit took {exited_in:.1f} s"


def test_the_sync_form_raises_a_start_failure_in_the_test_thread() -> None:
    with FakeTelegram().in_thread() as tg:
        tg.pause()
        try:
            with (
                pytest.raises(TimeoutError, match="for the bot to poll"),
                running(echo, tg, start_timeout=0.3),
            ):
                pytest.fail("the block ran although the bot never polled")
        finally:
            tg.resume()


def test_the_sync_form_raises_the_bots_failure_at_the_end() -> None:
    def revoke_the_token(tg: FakeTelegram) -> None:
        with running(echo, tg) as runner:
            tg.faults = Faults(answer=REVOKED, methods=frozenset({"getUpdates"}))
            tg.user("Alice").send("wake the long poll")
            tg.wait_for_sync(lambda: runner.stats.finished == 1)
            tg.wait_for_call_sync("getUpdates", where=lambda r: r.response == REVOKED)

    with FakeTelegram().in_thread() as tg, pytest.raises(ConfigError, match="401 Unauthorized"):
        revoke_the_token(tg)


def test_the_sync_form_needs_a_fake_in_thread_mode() -> None:
    with (
        pytest.raises(RuntimeError, match="needs FakeTelegram in thread mode"),
        running(echo, FakeTelegram()),
    ):
        pass


async def test_the_sync_form_is_refused_inside_an_event_loop() -> None:
    with (
        FakeTelegram().in_thread() as tg,
        pytest.raises(RuntimeError, match="would block this event loop"),
        running(echo, tg),
    ):
        pass
