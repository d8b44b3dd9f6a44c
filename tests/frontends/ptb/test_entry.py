"""python-telegram-bot entry points run unchanged, in-process against FakeTelegram:
``application.run_polling(...)`` runs the Application on tgrunner with the options passed there,
PTB's Updater never starts (no ``deleteWebhook`` bootstrap, every getUpdates is tgrunner's),
and what tgrunner cannot run (webhooks, an Updater started by hand) is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from tgrunner.errors import ConfigError
from tgrunner.runtime.build import build_launcher
from tgrunner.runtime.entry import EntryPoint
from tgrunner.settings import Settings
from tgrunner.testing import FakeTelegram

AnyApp = Application[Any, Any, Any, Any, Any, Any]
SETTINGS = Settings(grace=5.0)


def _application(tg: FakeTelegram) -> AnyApp:
    """PTB's echobot layout; the token and server are replaced by tgrunner's."""
    app = Application.builder().token("1:placeholder").build()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"echo {update.message.text}")

    app.add_handler(MessageHandler(filters.TEXT, echo))
    return app


def _entry(main: Any, tg: FakeTelegram) -> EntryPoint:
    entry = build_launcher(main, token=tg.token, api_url=tg.api_url, settings=SETTINGS)
    assert isinstance(entry, EntryPoint)
    return entry


async def test_main_calling_run_polling_runs_on_tgrunner_with_its_options(
    tg: FakeTelegram,
) -> None:
    user = tg.user()
    user.send("sent before the start")
    after: list[str] = []
    apps: list[AnyApp] = []

    def main() -> None:
        application = _application(tg)
        apps.append(application)
        application.run_polling(allowed_updates=["message"], drop_pending_updates=True, timeout=3)
        after.append("run_polling returned")

    entry = _entry(main, tg)
    task = asyncio.ensure_future(entry.serve(install_signals=False))
    await tg.wait_until_polling(timeout=10)
    user.send("hello")
    replies = await tg.wait_for_replies(user, 1, timeout=10)
    assert [r["text"] for r in replies] == ["echo hello"]  # the backlog was dropped
    updater = apps[0].updater
    assert updater is not None and not updater.running
    entry.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert after == ["run_polling returned"]
    polls = [call.params for call in tg.calls("getUpdates")]
    assert all("limit" in p for p in polls)
    assert {p["timeout"] for p in polls} <= {3, 0}, polls
    assert {tuple(p["allowed_updates"]) for p in polls if "allowed_updates" in p} == {("message",)}
    # tgrunner dropped the backlog once; PTB's Updater, which deletes the webhook on every
    # start, never ran.
    drops = [call.params for call in tg.calls("deleteWebhook")]
    assert drops == [{"drop_pending_updates": True}]


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("webhook", "it calls application.run_webhook(), and tgrunner runs the webhook "
         "itself: point tgrunner at the Application and pass --webhook-url"),
        ("updater", "it calls application.updater.start_polling(), and tgrunner runs the "
         "Application from its start"),
        ("in a loop", "it calls application.run_polling() inside a running event loop"),
    ],
)  # fmt: skip
async def test_what_tgrunner_cannot_run_is_refused(
    tg: FakeTelegram, how: str, message: str
) -> None:
    application = _application(tg)

    def webhook() -> None:
        application.run_webhook(listen="127.0.0.1", port=1, webhook_url="https://example.com")

    async def updater() -> None:
        assert application.updater is not None
        await application.updater.start_polling()

    async def in_a_loop() -> None:
        application.run_polling()

    main = {"webhook": webhook, "updater": updater, "in a loop": in_a_loop}[how]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await _entry(main, tg).serve(install_signals=False)
    assert tg.calls() == []
