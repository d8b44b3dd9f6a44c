"""``tgrunner run TARGET`` in its own process against FakeTelegram, the token in ``BOT_TOKEN``:
aiogram's quickstart through ``dp`` and through ``main``, PTB's echobot through ``main``,
``--factory``, and every refusal (exit code 2, one line, no traceback, nothing fetched or
confirmed), and the user's own tracebacks trimmed to their frames."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from processes import BotProcess
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[1] / "bots"

pytestmark = pytest.mark.slow

_procs: list[BotProcess] = []


@pytest.fixture(autouse=True)
async def _end_our_processes() -> AsyncIterator[None]:
    yield
    while _procs:
        bot = _procs.pop()
        if bot.proc.returncode is None:
            bot.proc.kill()
        await bot.finish()


async def run(
    tg: FakeTelegram,
    target: str,
    *extra: str,
    cwd: Path = BOTS,
    env: dict[str, str] | None = None,
    token_env: bool = True,
) -> BotProcess:
    """``tgrunner run TARGET --api-url <fake> *extra``, the token in ``BOT_TOKEN`` (not argv,
    where ``ps`` shows it) unless ``token_env`` is False."""
    base = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "TGRUNNER_TOKEN")}
    if token_env:
        base["BOT_TOKEN"] = tg.token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", target, "--api-url", tg.api_url, *extra,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    bot = BotProcess(proc)
    _procs.append(bot)
    return bot


async def polling(tg: FakeTelegram, bot: BotProcess) -> None:
    """Return once the bot polls; fail with its log if it exits first."""
    poll = asyncio.ensure_future(tg.wait_until_polling(timeout=30))
    ended = asyncio.ensure_future(bot.proc.wait())
    await asyncio.wait({poll, ended}, return_when=asyncio.FIRST_COMPLETED)
    for task in (poll, ended):
        task.cancel()
    assert bot.proc.returncode is None, f"the bot exited before polling:\n{bot.log}"


async def reply_to(tg: FakeTelegram, text: str) -> str:
    user = tg.user("Alice")
    user.send(text)
    replies = await tg.wait_for_replies(user, 1, timeout=15)
    return str(replies[-1]["text"])


async def stopped(bot: BotProcess) -> str:
    """SIGTERM; the exit code must be 0 and the log free of tracebacks; return the log."""
    bot.send_signal(signal.SIGTERM)
    code, log = await bot.finish()
    assert code == 0, log
    assert "Traceback" not in log
    return log


def own_polls(tg: FakeTelegram) -> list[dict[str, object]]:
    """Every getUpdates: each is tgrunner's (aiogram's own loop never sends ``limit``)."""
    polls = [call.params for call in tg.calls("getUpdates")]
    assert polls and all("limit" in params for params in polls), polls
    return polls


# -- every common layout runs unchanged ---------------------------------------------------------


@pytest.mark.timeout(60)
async def test_aiogram_quickstart_dispatcher_runs_and_tgrunner_creates_the_bot(
    tg: FakeTelegram,
) -> None:
    bot = await run(tg, "aiogram_quick:dp")
    await polling(tg, bot)
    assert await reply_to(tg, "hi") == "hi"
    log = await stopped(bot)
    assert (
        "no aiogram Bot found beside aiogram_quick:dp; created one with the token given to "
        "tgrunner (--token, $TGRUNNER_TOKEN or $BOT_TOKEN)"
    ) in log
    own_polls(tg)


@pytest.mark.timeout(60)
async def test_aiogram_quickstart_main_runs_unchanged_with_its_own_bot(tg: FakeTelegram) -> None:
    bot = await run(tg, "aiogram_quick:main")
    await polling(tg, bot)
    assert await reply_to(tg, "/start") == "Hello, <b>Alice</b>!"
    log = await stopped(bot)
    assert "aiogram_quick:main called dp.start_polling(): tgrunner runs it" in log
    assert "Start polling" not in log  # aiogram's own polling loop never started
    # Sent with the default properties of the Bot created in main.
    assert [c.params.get("parse_mode") for c in tg.calls("sendMessage")] == ["HTML"]
    own_polls(tg)


@pytest.mark.timeout(60)
async def test_aiogram_main_keeps_its_options_workflow_data_and_cleanup(tg: FakeTelegram) -> None:
    bot = await run(tg, "aiogram_quick_main:main")
    await polling(tg, bot)
    assert await reply_to(tg, "hi") == "echo: hi"
    log = await stopped(bot)
    assert "main: cleanup ran (resource open during polling: True)" in log
    polls = own_polls(tg)
    assert {p["timeout"] for p in polls} <= {7, 0}, polls  # start_polling(polling_timeout=7)


@pytest.mark.timeout(60)
async def test_ptb_echobot_main_runs_unchanged(tg: FakeTelegram) -> None:
    bot = await run(tg, "ptb_echobot:main")
    await polling(tg, bot)
    assert await reply_to(tg, "hello") == "hello"
    log = await stopped(bot)
    assert "ptb_echobot:main called application.run_polling(): tgrunner runs it" in log
    # PTB's Updater deletes the webhook on every start and polls with timeout=10: it never ran.
    assert tg.calls("deleteWebhook") == []
    assert {p["timeout"] for p in own_polls(tg)} <= {30, 0}


@pytest.mark.timeout(60)
async def test_ptb_echobot_main_drops_pending_updates_when_it_asks_to(tg: FakeTelegram) -> None:
    user = tg.user("Alice")
    user.send("sent while the bot was down")
    bot = await run(tg, "ptb_echobot:main", env={"PTB_ECHOBOT_DROP": "1"})
    await polling(tg, bot)
    user.send("hello")
    replies = await tg.wait_for_replies(user, 1, timeout=15)
    assert [r["text"] for r in replies] == ["hello"]
    await stopped(bot)
    assert [c.params for c in tg.calls("deleteWebhook")] == [{"drop_pending_updates": True}]


@pytest.mark.timeout(60)
async def test_a_module_level_bot_from_bot_token_gets_the_token_from_the_flag(
    tg: FakeTelegram,
) -> None:
    # The one test with --token on the command line: that is what it is about.
    bot = await run(tg, "aiogram_env_bot:dp", "--token", tg.token, token_env=False)
    await polling(tg, bot)
    assert await reply_to(tg, "hi") == "hi"
    await stopped(bot)


@pytest.mark.timeout(90)
async def test_factories_explicit_and_implicit(tg: FakeTelegram) -> None:
    bot = await run(tg, "wrong_targets:returns_router_async", "--factory")
    await polling(tg, bot)
    assert await reply_to(tg, "async factory") == "async factory"
    log = await stopped(bot)
    assert "a factory; --factory says so" not in log
    bot = await run(tg, "wrong_targets:returns_router")
    await polling(tg, bot)
    assert await reply_to(tg, "implicit") == "implicit"
    log = await stopped(bot)
    assert "wrong_targets:returns_router returned a Router: running it (a factory" in log


# -- wrong targets are refused before anything is fetched ---------------------------------------

REFUSALS = [
    ("wrong_targets:echo", (), "wrong_targets:echo looks like a route handler (it takes (ctx)): "
     "point at the Router it is registered on, e.g. wrong_targets:router"),
    ("wrong_targets:start", (), "looks like a python-telegram-bot handler (update, context): "
     "point at the Application"),
    ("aiogram_wrong:handler", (), "looks like an aiogram handler (it takes (message)): point at "
     "the Dispatcher, e.g. aiogram_wrong:dp"),
    ("wrong_targets:MyBot", (), "wrong_targets:MyBot is a class, not a bot"),
    ("wrong_targets:bot", (), "wrong_targets:bot is None, not a bot"),
    ("wrong_targets", (), "Bad target 'wrong_targets': expected 'module:attribute'"),
    ("aiogram_wrong:router", (), "is an aiogram Router, not a Dispatcher: point at the "
     "Dispatcher it is included in"),
    ("aiogram_wrong:bot", (), "is an aiogram Bot: point at the Dispatcher"),
    ("ptb_wrong:builder", (), "is a python-telegram-bot ApplicationBuilder: call .build()"),
    ("ptb_wrong:bot", (), "is a python-telegram-bot Bot: point tgrunner at the Application"),
    ("wrong_targets:returns_nothing", (), "wrong_targets:returns_nothing returned without "
     "starting a bot: it never called dp.start_polling(...) / application.run_polling()"),
    ("aiogram_wrong:main", (), "aiogram_wrong:main cannot run on tgrunner: it sets up aiogram's "
     "webhook request handler, and tgrunner runs the webhook itself: point tgrunner at the "
     "Dispatcher and pass --webhook-url and --listen"),
    ("ptb_wrong:webhook_main", (), "it calls application.run_webhook(), and tgrunner runs the "
     "webhook itself: point tgrunner at the Application and pass --webhook-url and --listen"),
    ("ptb_wrong:updater_main", (), "cannot take over an Updater started by hand"),
    ("aiogram_wrong:polls_at_factory", ("--factory",), "starts the bot itself "
     "(dp.start_polling()), so it is an entry point, not a factory returning the bot: run it "
     "without --factory"),
    ("wrong_targets:router", ("--factory",), "cannot be called without arguments, so it is no "
     "factory; drop --factory"),
]  # fmt: skip


@pytest.mark.parametrize(("target", "extra", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
@pytest.mark.timeout(60)
async def test_a_wrong_target_exits_2_before_anything_is_fetched(
    tg: FakeTelegram, target: str, extra: tuple[str, ...], message: str
) -> None:
    user = tg.user("Alice")
    user.send("must stay unconfirmed")
    bot = await run(tg, target, *extra, env={"PTB_WRONG_API": tg.api_url})
    code, log = await bot.finish()
    assert code == 2, log
    assert "Traceback" not in log
    assert log.splitlines()[-1].startswith("tgrunner: "), log
    assert message in log.splitlines()[-1], log
    assert tg.calls("getUpdates") == []
    assert tg.pending_updates == 1


@pytest.mark.timeout(60)
async def test_a_dispatcher_without_bot_or_token_names_the_flag_and_variable(
    tg: FakeTelegram,
) -> None:
    bot = await run(tg, "aiogram_quick:dp", token_env=False)
    code, log = await bot.finish()
    assert code == 2, log
    assert "Traceback" not in log
    assert log.splitlines() == [
        "tgrunner: Found no aiogram Bot beside aiogram_quick:dp (the aiogram quickstart creates "
        "it inside main()), and no token to create one: pass --token, or set BOT_TOKEN"
    ]


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
@pytest.mark.timeout(60)
async def test_a_module_that_starts_its_bot_on_import_is_refused(
    tg: FakeTelegram, tmp_path: Path, framework: str
) -> None:
    code = {
        "aiogram": """\
            import asyncio, os
            from aiogram import Bot, Dispatcher
            dp = Dispatcher()
            async def main():
                await dp.start_polling(Bot(os.environ["BOT_TOKEN"]))
            asyncio.run(main())
        """,
        "ptb": """\
            import os
            from telegram.ext import Application
            application = Application.builder().token(os.environ["BOT_TOKEN"]).build()
            application.run_polling()
        """,
    }[framework]
    (tmp_path / "at_import.py").write_text(textwrap.dedent(code))
    bot = await run(tg, "at_import:dp", cwd=tmp_path)
    status, log = await bot.finish()
    assert status == 2, log
    assert "Traceback" not in log
    assert log.splitlines()[-1].startswith("tgrunner: importing 'at_import' starts the bot ("), log
    assert "put the code that starts it under 'if __name__ == \"__main__\":'" in log
    assert tg.calls("getUpdates") == []


# -- errors in the user's module -----------------------------------------------------------------


def _frames(log: str) -> list[str]:
    return [line.strip() for line in log.splitlines() if line.lstrip().startswith('File "')]


@pytest.mark.timeout(60)
async def test_an_error_while_importing_shows_the_users_frames_only(tg: FakeTelegram) -> None:
    bot = await run(tg, "broken_import:x")
    code, log = await bot.finish()
    assert code == 2, log
    path = BOTS / "broken_import.py"
    assert _frames(log) == [
        f'File "{path}", line 10, in <module>',
        f'File "{path}", line 7, in compute',
    ]
    lines = log.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-2:] == [
        "ZeroDivisionError: division by zero",
        "tgrunner: importing 'broken_import' raised ZeroDivisionError: division by zero "
        "(traceback above)",
    ]


@pytest.mark.timeout(60)
async def test_a_syntax_error_shows_file_line_and_caret(tg: FakeTelegram, tmp_path: Path) -> None:
    (tmp_path / "bad_syntax.py").write_text("x = 1\ndef broken(:\n    pass\n")
    bot = await run(tg, "bad_syntax:x", cwd=tmp_path)
    code, log = await bot.finish()
    assert code == 2, log
    lines = log.splitlines()
    at = lines.index(f'  File "{tmp_path / "bad_syntax.py"}", line 2')
    assert lines[at + 1] == "    def broken(:"
    assert lines[at + 2].strip() == "^"
    assert lines[-1].startswith("tgrunner: importing 'bad_syntax' raised SyntaxError")
    assert "importlib" not in log and "Traceback" not in log


@pytest.mark.timeout(60)
async def test_an_error_raised_by_an_entry_point_shows_its_frames(tg: FakeTelegram) -> None:
    bot = await run(tg, "wrong_targets:explodes")
    code, log = await bot.finish()
    assert code == 2, log
    assert _frames(log) == [f'File "{BOTS / "wrong_targets.py"}", line 58, in explodes']
    assert log.splitlines()[-1] == (
        "tgrunner: wrong_targets:explodes raised RuntimeError: the factory failed (traceback above)"
    )
    assert tg.calls() == []
