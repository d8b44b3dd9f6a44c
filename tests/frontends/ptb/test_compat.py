"""Each function of :mod:`tgrunner.frontends.ptb.compat` against the installed
python-telegram-bot.

These guard the PTB internals tgrunner relies on: when PTB changes one underneath, the test
fails and its message names the internal that moved (see the compat docstrings for what
tgrunner then does)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from telegram import Bot, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    Updater,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from tgrunner.frontends.ptb import compat
from tgrunner.testing import FakeTelegram

AnyApp = Application[Any, Any, Any, Any, Any, Any]
ME = {"id": 1, "is_bot": True, "first_name": "B", "username": "b_bot"}


class Recording(BaseRequest):
    """A PTB request that answers every call with ``ME`` and records what PTB passed it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None: ...

    async def shutdown(self) -> None: ...

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        timeouts = (read_timeout, write_timeout, connect_timeout, pool_timeout)
        self.calls.append((url.rsplit("/", 1)[-1], timeouts))
        result: Any = [] if url.endswith("/getUpdates") else ME
        return 200, orjson.dumps({"ok": True, "result": result})


def update(update_id: int, text: str = "hi") -> dict[str, Any]:
    chat = {"id": 5, "type": "private"}
    sender = {"id": 5, "is_bot": False, "first_name": "A"}
    message = {"message_id": update_id, "date": 0, "chat": chat, "from": sender, "text": text}
    return {"update_id": update_id, "message": message}


@asynccontextmanager
async def started(app: AnyApp) -> AsyncIterator[AnyApp]:
    async with app:
        await app.start()
        try:
            yield app
        finally:
            await app.stop()


async def test_default_value_is_the_class_of_ptb_timeout_defaults() -> None:
    request = Recording()
    bot = Bot("1:a", request=request, get_updates_request=Recording())
    await bot.get_me()
    await bot.get_me(read_timeout=3)
    [(_, defaults), (_, given)] = request.calls
    assert all(isinstance(t, compat.DEFAULT_VALUE) for t in defaults), (
        f"BaseRequest.post passed timeouts {defaults!r} that are not of the class of "
        "BaseRequest.DEFAULT_NONE: TgrunnerRequest would take them for numbers"
    )
    assert given[0] == 3 and not isinstance(given[0], compat.DEFAULT_VALUE)


async def test_set_bot_endpoint_points_a_built_bot_elsewhere(tg: FakeTelegram) -> None:
    app = ApplicationBuilder().token("1:placeholder").build()
    bot = app.bot
    compat.set_bot_endpoint(
        bot, tg.token, f"{tg.api_url}/bot{tg.token}", f"{tg.api_url}/file/bot{tg.token}"
    )
    assert (bot.token, bot.base_url) == (tg.token, f"{tg.api_url}/bot{tg.token}"), (
        "set_bot_endpoint: Bot.token / base_url no longer read Bot._token / Bot._base_url"
    )
    assert bot.base_file_url == f"{tg.api_url}/file/bot{tg.token}", "Bot._base_file_url moved"
    async with bot:
        assert (await bot.get_me()).id == bot.id  # the call went to FakeTelegram


def test_set_bot_endpoint_fails_clearly_when_the_slots_moved() -> None:
    class Elsewhere:
        token = base_url = base_file_url = "old"

    with pytest.raises(RuntimeError, match=r"Bot\._token"):
        compat.set_bot_endpoint(Elsewhere(), "t", "u", "f")  # type: ignore[arg-type]


async def test_bot_requests_are_the_get_updates_and_the_other_request() -> None:
    bot = ApplicationBuilder().token("1:a").build().bot
    pair = compat.bot_requests(bot)
    assert pair is not None, "Bot._request is no longer the (get_updates, other) request pair"
    assert pair[1] is bot.request
    updates, other = Recording(), Recording()
    compat.set_bot_requests(bot, (updates, other))
    assert compat.bot_requests(bot) == (updates, other)
    await bot.get_updates(timeout=0)
    await bot.get_me()
    assert [name for name, _ in updates.calls] == ["getUpdates"], (
        "Bot._request[0] is no longer the request getUpdates goes through"
    )
    assert [name for name, _ in other.calls] == ["getMe"]
    assert compat.bot_requests(object()) is None  # type: ignore[arg-type]


async def test_non_blocking_tasks_holds_running_create_task_tasks(tg: FakeTelegram) -> None:
    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    release = asyncio.Event()
    async with started(app):
        task = app.create_task(release.wait())
        try:
            assert task in compat.non_blocking_tasks(app), (
                "Application.__create_task_tasks no longer holds the tasks of create_task"
            )
        finally:
            release.set()  # or the application's stop would wait for it
        await task
        await asyncio.sleep(0)  # the set is updated by the task's done callback
        assert task not in compat.non_blocking_tasks(app)
    assert compat.non_blocking_tasks(object()) == set()  # type: ignore[arg-type]


async def test_spawned_for_tells_the_updates_non_blocking_handlers(tg: FakeTelegram) -> None:
    release = asyncio.Event()

    async def wait(update: Update, context: Any) -> Any:
        await release.wait()
        return ConversationHandler.END

    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    app.add_handler(MessageHandler(filters.Regex("^plain"), wait, block=False))
    conversation = ConversationHandler(
        entry_points=[MessageHandler(filters.Regex("^talk"), wait, block=False)],
        states={},
        fallbacks=[],
    )
    app.add_handler(conversation, group=1)
    async with started(app):
        try:
            plain, talk, other = (
                Update.de_json(update(1, "plain"), app.bot),
                Update.de_json(update(2, "talk"), app.bot),
                Update.de_json(update(3, "plain"), app.bot),
            )
            for u in (plain, talk):
                await app.process_update(u)
            own = app.create_task(release.wait(), update=plain)  # the bot's own work
            tasks = compat.non_blocking_tasks(app)
            names = sorted(t.get_name() for t in tasks)
            for_plain = [t for t in tasks if compat.spawned_for(t, plain)]
            for_talk = [t for t in tasks if compat.spawned_for(t, talk)]
            assert len(for_plain) == 1, (
                "spawned_for: no task named 'Application:<id>:process_update_non_blocking:…' "
                f"whose coroutine has the update as its 'update' local; tasks: {names}"
            )
            assert len(for_talk) == 1, (
                "spawned_for: no task named 'ConversationHandler:2:handle_update:…'; "
                f"tasks: {names}"
            )
            assert own not in for_plain
            assert not any(compat.spawned_for(t, other) for t in tasks)
        finally:
            release.set()  # or the application's stop would wait for them
        await asyncio.wait(tasks)
        assert not any(compat.spawned_for(t, plain) for t in tasks)  # done: no longer running


def test_httpx_client_kwargs() -> None:
    kwargs = compat.httpx_client_kwargs(
        HTTPXRequest(proxy="http://127.0.0.1:3128", httpx_kwargs={"verify": False})
    )
    assert kwargs is not None, "HTTPXRequest._client_kwargs is gone"
    assert kwargs.get("proxy") == "http://127.0.0.1:3128", "_client_kwargs['proxy'] moved"
    assert kwargs.get("verify") is False, "httpx_kwargs no longer land in _client_kwargs"
    assert {"timeout", "limits", "transport"} <= set(kwargs)
    assert compat.httpx_client_kwargs(object()) is None


def test_httpx_timeouts() -> None:
    request = HTTPXRequest(
        read_timeout=1, write_timeout=2, connect_timeout=3, pool_timeout=4, media_write_timeout=5
    )
    assert compat.httpx_timeouts(request) == {
        "read_timeout": 1,
        "write_timeout": 2,
        "connect_timeout": 3,
        "pool_timeout": 4,
        "media_write_timeout": 5,
    }, "HTTPXRequest._client.timeout or HTTPXRequest._media_write_timeout moved"


async def test_conversation_states_are_the_handlers_own(tg: FakeTelegram) -> None:
    async def enter(update: Update, context: Any) -> int:
        return 1

    async def leave(update: Update, context: Any) -> int:
        return ConversationHandler.END

    conversation = ConversationHandler(
        entry_points=[MessageHandler(filters.Regex("^talk"), enter)],
        states={1: [MessageHandler(filters.TEXT, leave)]},
        fallbacks=[],
    )
    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    app.add_handler(conversation)
    states = compat.conversation_states(conversation)
    async with started(app):
        await app.process_update(Update.de_json(update(1, "talk"), app.bot))
        assert dict(states) == {(5, 5): 1}, (
            "ConversationHandler._conversations no longer holds the state of each conversation"
        )
        states.clear()  # what a reset does: the next message starts no state's handler
        assert conversation.check_update(Update.de_json(update(2, "hello"), app.bot)) is None, (
            "emptying ConversationHandler._conversations did not end the conversation"
        )


def test_conversation_states_fail_clearly_when_moved() -> None:
    with pytest.raises(RuntimeError, match=r"ConversationHandler\._conversations"):
        compat.conversation_states(object())  # type: ignore[arg-type]


async def test_fresh_persistence_event_lets_the_application_run_on_another_loop(
    tg: FakeTelegram, tmp_path: Any
) -> None:
    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(f"{tg.api_url}/bot")
        .persistence(PicklePersistence(tmp_path / "data.pickle"))
        .build()
    )

    def run_once() -> None:
        async def start_and_stop() -> None:
            async with started(app):
                await asyncio.sleep(0)  # the persistence loop starts waiting on the event

        asyncio.run(start_and_stop())

    async with started(app):
        await asyncio.sleep(0)  # this loop now owns the event
    assert compat.fresh_persistence_event(app), (
        "Application.__update_persistence_event is gone: an application with a persistence "
        "can no longer be given a new one"
    )
    # The loop of this test owned the old event; a new loop (in a thread: this one runs) can
    # now start and stop the application. (Its update queue is public, and replaced as is.)
    app.update_queue = asyncio.Queue()
    await asyncio.to_thread(run_once)


def test_polling_calls_take_run_polling_refuse_the_rest_and_put_them_back() -> None:
    params = inspect.signature(Application.run_polling).parameters
    assert {"allowed_updates", "drop_pending_updates", "timeout"} <= set(params), (
        f"PTB's Application.run_polling lost a parameter tgrunner maps: {params}"
    )
    methods = ("run_polling", "run_webhook")
    original = [Application.__dict__[m] for m in methods]
    updater = [Updater.__dict__[m] for m in ("start_polling", "start_webhook")]
    seen: list[tuple[Any, dict[str, Any]]] = []
    refused: list[str] = []
    app = ApplicationBuilder().token("1:a").build()
    assert app.updater is not None
    with compat.polling_calls(lambda a, options: seen.append((a, options)), refused.append):
        app.run_polling(allowed_updates=["message"], timeout=5)
        app.run_webhook(port=1)
        app.updater.start_polling()
        app.updater.start_webhook()
        with pytest.raises(TypeError):  # a wrong call fails as it does without tgrunner
            app.run_polling(no_such_option=1)  # type: ignore[call-arg]
    assert seen == [(app, {"allowed_updates": ["message"], "timeout": 5})]
    assert refused == [
        "application.run_webhook()",
        "application.updater.start_polling()",
        "application.updater.start_webhook()",
    ]
    assert [Application.__dict__[m] for m in methods] == original
    assert [Updater.__dict__[m] for m in ("start_polling", "start_webhook")] == updater


async def test_drop_jobs_removes_the_jobs_set_up_before_start(tg: FakeTelegram) -> None:
    app = ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot").build()
    queue = app.job_queue
    assert queue is not None
    early, late = asyncio.Event(), asyncio.Event()

    async def set_up_early(context: Any) -> None:
        early.set()

    async def added_later(context: Any) -> None:
        late.set()

    queue.run_repeating(set_up_early, interval=0.01, first=0)
    queue.run_once(set_up_early, when=0)
    assert compat.drop_jobs(app) == 2
    assert queue.jobs() == ()
    async with started(app):
        queue.run_once(added_later, when=0)  # as a handler would: it runs
        async with asyncio.timeout(5):
            await late.wait()
    # The dropped ones were due before the late one, so they would have run first.
    assert not early.is_set(), "a job removed by drop_jobs() ran when the JobQueue started"


def test_drop_jobs_without_a_job_queue() -> None:
    app = ApplicationBuilder().token("1:a").job_queue(None).build()
    assert compat.drop_jobs(app) == 0
