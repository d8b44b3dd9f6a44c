"""python-telegram-bot 22 applications on tgrunner, against FakeTelegram over real HTTP.

- The sample bot (``examples/ptb_bot.py``) gets, in every chat, the replies it gets under PTB's
  own polling run sequentially.
- Order holds under concurrency; ``block=False`` handlers keep it too.
- ConversationHandler, JobQueue and PicklePersistence work; persistence is flushed at stop
  and read back on restart.
- Both request modes work, and PTB's exceptions come out of the tgrunner request.
- Errors reach PTB's error handlers, else tgrunner's hook.
- ``tgrunner run`` in a subprocess: SIGTERM under load loses and repeats nothing; SIGKILL and a
  restart lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import ptb_sample
import pytest
from telegram import Bot, Update
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, ApplicationBuilder, MessageHandler, PicklePersistence, filters
from telegram.request import HTTPXRequest

from replies import replied, send_load, send_round, tally
from tgrunner.errors import ConfigError
from tgrunner.frontends import detect
from tgrunner.frontends.ptb import ALL_TYPES, adapt
from tgrunner.frontends.ptb.request import TgrunnerRequest
from tgrunner.keys import chat_and_user_keys
from tgrunner.runtime.build import build_runner
from tgrunner.runtime.runner import Runner
from tgrunner.settings import PollingOptions, SchedulerOptions, Settings
from tgrunner.testing import FakeTelegram
from tgrunner.testing.fake.faults import Faults, FloodLimits

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "examples" / "ptb_bot.py"
# Telegram returns at most 100 updates past the confirmed offset, so no more can be in flight.
IN_FLIGHT_BOUND = 100
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

AnyApp = Application[Any, Any, Any, Any, Any, Any]


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("ptb_bot_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@contextlib.asynccontextmanager
async def on_tgrunner(
    app: AnyApp,
    *,
    on_error: Callable[[dict[str, Any], BaseException], Any] | None = None,
    concurrency: int = 500,
    handler_timeout: float | None = None,
    **options: Any,
) -> AsyncIterator[Runner]:
    """Run ``app`` on tgrunner as build_runner wires it, with an error hook; stop on exit."""
    fe = adapt(app, **options)
    assert fe.token is not None
    assert fe.api_url is not None
    settings = Settings(
        keys=fe.keys or chat_and_user_keys,
        polling=PollingOptions(timeout=1, allowed_updates=fe.allowed_updates),
        scheduler=SchedulerOptions(concurrency=concurrency, handler_timeout=handler_timeout),
    )
    runner = Runner(
        fe.handler,
        token=fe.token,
        api_url=fe.api_url,
        settings=settings,
        on_error=on_error,
        startup=fe.startup,
        shutdown=fe.shutdown,
    )
    task = asyncio.create_task(runner.serve(install_signals=False))
    try:
        yield runner
    finally:
        runner.stop()
        assert await asyncio.wait_for(task, 30) == 0


@contextlib.asynccontextmanager
async def on_ptb_polling(app: AnyApp) -> AsyncIterator[None]:
    """PTB's own runner, sequential: the Application with its Updater polling."""
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


def events(tg: FakeTelegram) -> dict[int, list[str]]:
    """Per chat, what the bot sent and edited there, in arrival order."""
    out: dict[int, list[str]] = {}
    for r in tg.requests:
        if r.method in ("sendMessage", "editMessageText") and r.ok:
            out.setdefault(int(r.params["chat_id"]), []).append(f"{r.method}: {r.params['text']}")
    return out


async def until_events(tg: FakeTelegram, chat_id: int, count: int, timeout: float = 15) -> None:
    await tg.wait_for(lambda: len(events(tg).get(chat_id, ())) >= count, timeout=timeout)


# -- the sample bot: same replies as under PTB's own runner ----------------------------------


async def script(tg: FakeTelegram, user: Any, index: int) -> None:
    """One user's session with the sample bot; waits only where a reply is needed to go on."""
    chat = user.chat.id
    user.send("/start")
    await until_events(tg, chat, 1)
    menu = tg.replies(chat)[0]
    for n, data in enumerate(("count", "count", "about"), start=2):
        user.press(menu, data)
        await until_events(tg, chat, n)
    # The whole conversation at once, a wrong answer included: order alone makes it work.
    for text in ("/order", "XL", "m", f"Name {index}", "maybe", "yes"):
        user.send(text)
    await until_events(tg, chat, 10)
    for text in ("/boom", "/slow", "/help", "/remind"):
        user.send(text)
    await until_events(tg, chat, 15)  # the four answers, then the reminder job


async def run_script(
    tg: FakeTelegram, users: int, run: Callable[[], contextlib.AbstractAsyncContextManager[Any]]
) -> list[list[str]]:
    people = [tg.user(f"User{i}") for i in range(users)]
    async with run():
        await asyncio.gather(*(script(tg, user, i) for i, user in enumerate(people)))
    per_chat = events(tg)
    return [per_chat[user.chat.id] for user in people]


@pytest.mark.timeout(60)
async def test_sample_bot_replies_as_under_ptb_own_runner(tmp_path: Path) -> None:
    users = 4
    timing = {"slow_seconds": 0.05, "remind_seconds": 0.02}
    async with FakeTelegram() as tg:
        app = example.build(
            tg.token, api_url=tg.api_url, persistence_path=tmp_path / "ptb.pickle", **timing
        )
        expected = await run_script(tg, users, lambda: on_ptb_polling(app))
    async with FakeTelegram() as tg:
        app = example.build(
            tg.token, api_url=tg.api_url, persistence_path=tmp_path / "tgr.pickle", **timing
        )

        @contextlib.asynccontextmanager
        async def tgrunner() -> AsyncIterator[None]:
            runner = build_runner(app, settings=Settings())
            task = asyncio.create_task(runner.serve(install_signals=False))
            yield
            runner.stop()
            assert await asyncio.wait_for(task, 30) == 0

        got = await run_script(tg, users, tgrunner)
    assert got == expected
    assert expected[0] == [
        "sendMessage: Hi User0! Pick one:",
        "editMessageText: Count: 1",
        "editMessageText: Count: 2",
        "editMessageText: This bot runs unchanged on python-telegram-bot and on tgrunner.",
        "sendMessage: What size? S, M or L",
        "sendMessage: Please answer S, M or L.",
        "sendMessage: Whose name goes on it?",
        "sendMessage: A size M T-shirt for Name 0. Confirm? yes or no",
        "sendMessage: Please answer yes or no.",
        "sendMessage: Order #1 confirmed: M for Name 0.",
        "sendMessage: Sorry, something went wrong.",
        "sendMessage: Done, after a pause.",
        f"sendMessage: {example.HELP}",
        "sendMessage: Reminder set.",
        "sendMessage: Reminder!",
    ]


# -- order and concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize("block", [True, False], ids=["blocking", "block=False"])
@pytest.mark.timeout(60)
async def test_order_holds_under_concurrency(tg: FakeTelegram, block: bool) -> None:
    ptb_sample.load.peak = 0
    app = ptb_sample.build(tg.token, api_url=tg.api_url, block=block)
    users = [tg.user(f"U{i}") for i in range(40)]
    sent: dict[int, list[str]] = {}
    n = 0
    for _ in range(4):  # a backlog, waiting before the bot starts
        n = send_round(users, sent, n)
    async with on_tgrunner(app):
        for _ in range(4):  # and more while it works
            n = send_round(users, sent, n)
            await asyncio.sleep(0)
        await tg.wait_for(lambda: replied(tg) >= n, timeout=30)
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert ptb_sample.load.peak > 1, "handlers never ran concurrently"
    assert tg.pending_updates == 0


# -- conversation, job queue, persistence ------------------------------------------------------


@pytest.mark.timeout(60)
async def test_conversation_jobs_and_persistence_survive_a_restart(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    path = tmp_path / "bot.pickle"

    def build() -> AnyApp:
        app: AnyApp = example.build(
            tg.token, api_url=tg.api_url, persistence_path=path, remind_seconds=0.01
        )
        return app

    alice = tg.user("Alice")
    chat = alice.chat.id
    async with on_tgrunner(build()):
        alice.send("/start")
        await until_events(tg, chat, 1)
        alice.press(tg.replies(chat)[0], "count")
        for text in ("/remind", "/order", "L"):
            alice.send(text)
        await until_events(tg, chat, 6)  # count, reminder set + job, two conversation steps
    # The job runs beside the updates that follow: its message may come anywhere after.
    sent = events(tg)[chat]
    assert sent.index("sendMessage: Reminder!") > sent.index("sendMessage: Reminder set.")
    assert [t for t in sent if t != "sendMessage: Reminder!"][2:] == [
        "sendMessage: Reminder set.",
        "sendMessage: What size? S, M or L",
        "sendMessage: Whose name goes on it?",
    ]
    stored = PicklePersistence(path)
    assert (await stored.get_user_data())[alice.id]["count"] == 1
    assert (await stored.get_conversations("order")) == {(chat, alice.id): example.NAME}

    # A new process: the counter and the half-done conversation come back from the file.
    async with on_tgrunner(build()):
        alice.press(tg.replies(chat)[0], "count")
        alice.send("Alice")
        await until_events(tg, chat, 8)
    assert events(tg)[chat][6:] == [
        "editMessageText: Count: 2",
        "sendMessage: A size L T-shirt for Alice. Confirm? yes or no",
    ]
    assert (await PicklePersistence(path).get_user_data())[alice.id]["count"] == 2


# -- errors ------------------------------------------------------------------------------------


def failing_app(tg: FakeTelegram, *, block: bool = True) -> AnyApp:
    async def fail(update: Update, context: Any) -> None:
        raise ValueError(f"failed on {update.effective_message.text}")

    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    app.add_handler(MessageHandler(filters.TEXT, fail, block=block))
    return app


@pytest.mark.parametrize("block", [True, False], ids=["blocking", "block=False"])
@pytest.mark.timeout(30)
async def test_errors_reach_tgrunner_hook_when_ptb_has_no_error_handler(
    tg: FakeTelegram, block: bool
) -> None:
    seen: list[tuple[int, BaseException]] = []
    app = failing_app(tg, block=block)
    alice = tg.user("Alice")
    async with on_tgrunner(app, on_error=lambda u, e: seen.append((u["update_id"], e))) as runner:
        alice.send("one")
        alice.send("two")
        await tg.wait_for(lambda: runner.stats.finished == 2)
    assert [str(e) for _, e in seen] == ["failed on one", "failed on two"]
    assert all(isinstance(e, ValueError) for _, e in seen)
    assert not app.error_handlers, "tgrunner's fallback stayed registered"
    assert tg.pending_updates == 0


@pytest.mark.timeout(30)
async def test_ptb_error_handlers_come_first(tg: FakeTelegram) -> None:
    hook: list[BaseException] = []
    handled: list[BaseException] = []
    app = failing_app(tg)

    async def on_error(update: object, context: Any) -> None:
        handled.append(context.error)

    app.add_error_handler(on_error)
    alice = tg.user("Alice")
    async with on_tgrunner(app, on_error=lambda u, e: hook.append(e)) as runner:
        alice.send("one")
        await tg.wait_for(lambda: runner.stats.finished == 1)
    assert [str(e) for e in handled] == ["failed on one"]
    assert hook == []


@pytest.mark.timeout(30)
async def test_handler_time_limit_cancels_the_ptb_handler(tg: FakeTelegram) -> None:
    cancelled = asyncio.Event()

    async def stuck(update: Update, context: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    app.add_handler(MessageHandler(filters.TEXT, stuck))
    tg.user("Alice").send("hang")
    async with on_tgrunner(app, handler_timeout=0.2) as runner:
        await tg.wait_for(lambda: runner.stats.finished == 1, timeout=10)
    assert cancelled.is_set()
    assert runner.stats.timeouts == 1
    assert tg.pending_updates == 0


# -- the request class ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["tgrunner", "ptb"])
@pytest.mark.timeout(30)
async def test_both_request_modes_run_the_bot(tg: FakeTelegram, mode: str) -> None:
    app = ptb_sample.build(tg.token, api_url=tg.api_url)
    alice = tg.user("Alice")
    alice.send("hello")
    async with on_tgrunner(app, request=mode):
        await tg.wait_for_replies(alice, 1)
        expected = TgrunnerRequest if mode == "tgrunner" else HTTPXRequest
        assert type(app.bot.request) is expected
        await app.bot.send_message(alice.chat.id, "direct")
    assert [m["text"] for m in tg.replies(alice)] == ["hello", "direct"]


@pytest.mark.timeout(30)
async def test_a_customised_httpx_request_is_kept(tg: FakeTelegram) -> None:
    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.api_url}/bot")
        .socket_options([(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        .build()
    )
    alice = tg.user("Alice")
    async with on_tgrunner(app):
        await app.bot.send_message(alice.chat.id, "kept")
        assert type(app.bot.request) is HTTPXRequest
    assert [m["text"] for m in tg.replies(alice)] == ["kept"]


@pytest.mark.timeout(30)
async def test_tgrunner_request_raises_ptb_exceptions(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = tg.user("Alice")
    bot = Bot(
        tg.token,
        base_url=f"{tg.api_url}/bot",
        base_file_url=f"{tg.api_url}/file/bot",
        # A call may take the sum of its timeouts.
        request=TgrunnerRequest(
            read_timeout=0.2, write_timeout=0.1, connect_timeout=0.1, pool_timeout=0.1
        ),
        get_updates_request=TgrunnerRequest(),
    )
    async with bot:
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(alice.chat.id, "")
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(987654321, "hi")

        tg.flood = FloodLimits(per_chat_per_second=0.01, private_burst=1)
        await bot.send_message(alice.chat.id, "first")
        # PTB warns about its retry_after type unless asked for the coming one.
        monkeypatch.setenv("PTB_TIMEDELTA", "1")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(alice.chat.id, "second")
        assert isinstance(info.value.retry_after, timedelta)
        assert info.value.retry_after.total_seconds() > 0
        tg.flood = None

        tg.faults = Faults(latency=1.0, methods=frozenset({"sendMessage"}))
        with pytest.raises(TimedOut):
            await bot.send_message(alice.chat.id, "too slow")
        tg.faults = None

        # An upload goes as multipart; the download comes back byte for byte.
        sent = await bot.send_photo(alice.chat.id, PHOTO, caption="a photo")
        file = await bot.get_file(sent.photo[-1].file_id)
        assert bytes(await file.download_as_bytearray()) == PHOTO
        assert tg.calls("sendPhoto")[-1].params["caption"] == "a photo"

    wrong = Bot("123:not-the-token", base_url=f"{tg.api_url}/bot", request=TgrunnerRequest())
    with pytest.raises(InvalidToken):
        await wrong.initialize()
    await wrong.shutdown()

    nowhere = Bot(tg.token, base_url="http://127.0.0.1:9/bot", request=TgrunnerRequest())
    with pytest.raises(NetworkError):
        await nowhere.get_me()
    await nowhere.shutdown()


# -- adapting ----------------------------------------------------------------------------------


async def test_adapt_reads_the_bot_and_applies_overrides(tg: FakeTelegram) -> None:
    app = ptb_sample.build(tg.token, api_url=tg.api_url)
    fe = detect(app, token=None, api_url=None)
    assert fe is not None
    assert (fe.token, fe.api_url) == (tg.token, tg.api_url)
    assert fe.keys is chat_and_user_keys
    assert fe.allowed_updates == ALL_TYPES
    assert "chat_member" in ALL_TYPES
    assert "message_reaction" in ALL_TYPES

    placeholder = ptb_sample.build()
    fe = adapt(placeholder, token=tg.token, api_url=tg.api_url + "/")
    assert (fe.token, fe.api_url) == (tg.token, tg.api_url)
    assert placeholder.bot.base_url == f"{tg.api_url}/bot{tg.token}"
    assert placeholder.bot.base_file_url == f"{tg.api_url}/file/bot{tg.token}"

    custom = ApplicationBuilder().token(tg.token).base_url(tg.api_url + "/bot{token}/test").build()
    with pytest.raises(ConfigError, match="cannot tell where to poll"):
        adapt(custom)
    assert adapt(custom, api_url=tg.api_url).api_url == tg.api_url

    with pytest.raises(ConfigError, match="request='httpx'"):
        adapt(app, request="httpx")
    with pytest.raises(ConfigError, match="Application, not ExtBot"):
        adapt(app.bot)


@pytest.mark.timeout(30)
async def test_build_runner_keeps_the_users_settings(tg: FakeTelegram) -> None:
    app = ptb_sample.build(tg.token, api_url=tg.api_url)
    runner = build_runner(
        app, settings=Settings(polling=PollingOptions(allowed_updates=("message",)))
    )
    assert runner.settings.polling.allowed_updates == ("message",)
    assert runner.settings.keys is chat_and_user_keys
    await runner.bot.close()


@pytest.mark.timeout(30)
async def test_lifecycle_hooks_run_as_under_run_polling(tg: FakeTelegram) -> None:
    calls: list[str] = []

    def hook(name: str) -> Callable[[AnyApp], Any]:
        async def record(app: AnyApp) -> None:
            calls.append(f"{name}: running={app.running}")

        return record

    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.api_url}/bot")
        .post_init(hook("post_init"))
        .post_stop(hook("post_stop"))
        .post_shutdown(hook("post_shutdown"))
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, ptb_sample.echo))
    alice = tg.user("Alice")
    alice.send("hello")
    async with on_tgrunner(app):
        await tg.wait_for_replies(alice, 1)
        assert calls == ["post_init: running=False"]
        assert app.running
        request = app.bot.request
        assert isinstance(request, TgrunnerRequest)
    assert calls == [
        "post_init: running=False",
        "post_stop: running=False",
        "post_shutdown: running=False",
    ]
    assert request._clients == {}, "the request's connections were left open"


@pytest.mark.timeout(30)
async def test_a_failed_start_shuts_the_application_down(tg: FakeTelegram) -> None:
    calls: list[str] = []

    async def post_init(app: AnyApp) -> None:
        raise RuntimeError("no database")

    async def post_shutdown(app: AnyApp) -> None:
        calls.append("post_shutdown")

    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.api_url}/bot")
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    fe = adapt(app)
    assert fe.startup is not None
    with pytest.raises(RuntimeError, match="no database"):
        await fe.startup()
    assert calls == ["post_shutdown"]
    assert not app.running


# -- a real process: graceful stop and crash -----------------------------------------------


async def start_bot(
    tg: FakeTelegram, env: dict[str, str], *extra: str
) -> asyncio.subprocess.Process:
    polls = len(tg.calls("getUpdates"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", "ptb_sample:application",
        "--api-url", tg.api_url, "--token", tg.token, *extra,
        cwd=HERE,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )  # fmt: skip
    await tg.wait_for(lambda: len(tg.calls("getUpdates")) > polls, timeout=30)
    return proc


async def finish(proc: asyncio.subprocess.Process, timeout: float = 30) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


async def read_until(proc: asyncio.subprocess.Process, text: str, timeout: float = 10) -> str:
    """The process's stderr up to and including the first line that contains ``text``."""
    assert proc.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while not lines or text not in lines[-1]:
            line = await proc.stderr.readline()
            assert line, f"the process ended without saying {text!r}: {''.join(lines)}"
            lines.append(line.decode(errors="replace"))
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigterm_under_load_loses_and_repeats_nothing(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    env = {"PTB_SAMPLE_PERSISTENCE": str(tmp_path / "sample.pickle")}
    sent = send_load(tg, chats=40, per_chat=25)
    total = sum(len(v) for v in sent.values())
    bot = await start_bot(tg, env)
    await tg.wait_for(lambda: replied(tg) >= total // 4, timeout=30)
    bot.send_signal(signal.SIGTERM)
    code, err = await finish(bot)
    assert code == 0, err
    assert "Traceback" not in err
    first = replied(tg)
    assert first < total, "the stop came too late to test anything"
    # The stop flushed the persistence: every handled message is counted in the file.
    chat_data = await PicklePersistence(env["PTB_SAMPLE_PERSISTENCE"]).get_chat_data()
    assert sum(d.get("handled", 0) for d in chat_data.values()) == first

    bot = await start_bot(tg, env)
    await tg.wait_for(lambda: replied(tg) >= total, timeout=60)
    bot.send_signal(signal.SIGTERM)
    code, err = await finish(bot)
    assert code == 0, err
    assert "Traceback" not in err
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0
    # Read back on restart, then flushed again: the counts add up over both runs.
    chat_data = await PicklePersistence(env["PTB_SAMPLE_PERSISTENCE"]).get_chat_data()
    assert sum(d.get("handled", 0) for d in chat_data.values()) == total


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_run_takes_a_factory_and_stops_on_sigterm(tg: FakeTelegram) -> None:
    tg.user("Alice").send("hello")
    polls = len(tg.calls("getUpdates"))
    code = (
        "import ptb_sample\n"
        "from tgrunner.frontends.ptb import run\n"
        f"raise SystemExit(run(ptb_sample.build, token={tg.token!r}, api_url={tg.api_url!r}))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        cwd=HERE,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    await tg.wait_for(lambda: len(tg.calls("getUpdates")) > polls, timeout=30)
    await tg.wait_for(lambda: replied(tg) == 1, timeout=10)
    proc.send_signal(signal.SIGTERM)
    exit_code, err = await finish(proc)
    assert exit_code == 0, err
    assert "Traceback" not in err
    assert tg.pending_updates == 0


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_second_signal_exits_at_once(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    alice.send("/slow")
    bot = await start_bot(tg, {}, "--grace", "60")
    await tg.wait_for_replies(alice, 1, timeout=20)  # "started": the handler is running
    bot.send_signal(signal.SIGTERM)
    # The first signal waits for the handler (up to the 60 s grace); the second must not. It is
    # sent once the first was seen: a signal sent while the same one is pending is merged.
    seen = await read_until(bot, "received SIGTERM")
    bot.send_signal(signal.SIGTERM)
    code, err = await finish(bot, timeout=10)
    err = seen + err
    assert code == 1, err
    assert "Traceback" not in err
    # The unfinished update was not confirmed: it is still pending at Telegram.
    assert tg.pending_updates == 1
    # Only the runner's own handler tasks count: PTB's long-lived tasks are not stragglers.
    assert "ignore cancellation" not in err


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigkill_then_restart_loses_nothing(tg: FakeTelegram) -> None:
    sent = send_load(tg, chats=40, per_chat=25)
    total = sum(len(v) for v in sent.values())
    bot = await start_bot(tg, {})
    await tg.wait_for(lambda: replied(tg) >= total // 4, timeout=30)
    bot.kill()
    await finish(bot)
    assert replied(tg) < total

    bot = await start_bot(tg, {})
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=60)
    bot.send_signal(signal.SIGTERM)
    code, err = await finish(bot)
    assert code == 0, err
    result = tally(sent, tg.requests)
    assert result.lost == 0
    assert result.duplicates <= IN_FLIGHT_BOUND
    assert result.violations == 0
