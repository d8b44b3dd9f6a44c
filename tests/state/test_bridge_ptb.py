"""``TgrunnerPersistence``, PTB's persistence on a store, on every backend: what one instance
writes a fresh one (a restart, another worker) reads back, through the indexes; drops and
ended conversations leave nothing; ``refresh_*`` brings another process's writes in place;
an instance never puts back a value it did not change over another's write. And under
tgrunner an update's data is in the store once the update is finished, with no flush."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from state_backends import BACKENDS, fresh_url
from telegram import Update
from telegram.ext import (
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from frontends.ptb.helpers import on_tgrunner
from tgrunner.state import Store, open_store, use_store
from tgrunner.state.bridges.ptb import TgrunnerPersistence
from tgrunner.testing import FakeTelegram

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_what_one_instance_writes_a_fresh_one_reads(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        one = TgrunnerPersistence(store)
        await one.update_user_data(7, {"name": "Ann", "n": [1, 2]})
        await one.update_user_data(8, {"name": "Bob"})
        await one.update_user_data(9, {})  # nothing to keep
        await one.update_chat_data(-5, {"title": "team"})
        await one.update_bot_data({"runs": 3})
        await one.update_callback_data(([("uuid1", 12.5, {"b1": "x"})], {"q1": "uuid1"}))
        await one.update_conversation("form", (-5, 7), 1)
        await one.update_conversation("form", (-5, 8), "city")
        await one.update_conversation("other", ("x",), 0)
        two = TgrunnerPersistence(store)
        assert await two.get_user_data() == {7: {"name": "Ann", "n": [1, 2]}, 8: {"name": "Bob"}}
        assert await two.get_chat_data() == {-5: {"title": "team"}}
        assert await two.get_bot_data() == {"runs": 3}
        assert await two.get_callback_data() == ([("uuid1", 12.5, {"b1": "x"})], {"q1": "uuid1"})
        assert await two.get_conversations("form") == {(-5, 7): 1, (-5, 8): "city"}
        assert await two.get_conversations("other") == {("x",): 0}
        assert await two.get_conversations("none") == {}
        # An ended conversation, a dropped user and an emptied chat leave nothing.
        await two.update_conversation("form", (-5, 7), None)
        await two.drop_user_data(8)
        await two.update_chat_data(-5, {})
        three = TgrunnerPersistence(store)
        assert await three.get_conversations("form") == {(-5, 8): "city"}
        assert await three.get_user_data() == {7: {"name": "Ann", "n": [1, 2]}}
        assert await three.get_chat_data() == {}
        assert await store.get("ptb:user:8") is None and await store.get("ptb:users") == [7]
        with pytest.raises(TypeError, match="is not JSON"):
            await three.update_user_data(7, {"when": object()})
        assert (await TgrunnerPersistence(store).get_user_data())[7]["name"] == "Ann"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_refresh_brings_writes_in_and_unchanged_data_is_not_put_back(
    backend: str, tmp_path: Path
) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        a, b = TgrunnerPersistence(store, prefix="p:"), TgrunnerPersistence(store, prefix="p:")
        mine: dict[str, Any] = {"n": 1}
        await a.update_user_data(7, mine)
        await a.update_bot_data({"v": 1})
        theirs: dict[str, Any] = {}
        await b.refresh_user_data(7, theirs)
        assert theirs == {"n": 1}
        theirs["n"] = 2
        await b.update_user_data(7, theirs)
        await b.update_bot_data({"v": 2})
        # ``a`` changed nothing since it last wrote: its stale copies are not written back.
        await a.update_user_data(7, mine)
        await a.update_bot_data({"v": 1})
        assert await store.get("p:user:7") == {"n": 2}
        assert await store.get("p:bot_data") == {"v": 2}
        await a.refresh_user_data(7, mine)
        assert mine == {"n": 2}  # refreshed in place: the dict PTB holds
        bot_data: dict[str, Any] = {"stale": True}
        await a.refresh_bot_data(bot_data)
        assert bot_data == {"v": 2}


async def _ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message is not None
    await update.effective_message.reply_text("name?")
    return 0


async def _name(update: Update, context: ContextTypes.DEFAULT_TYPE) -> int:
    assert update.effective_message is not None and context.user_data is not None
    context.user_data["name"] = update.effective_message.text
    await update.effective_message.reply_text("thanks")
    return ConversationHandler.END


async def test_under_tgrunner_each_update_is_written_before_it_is_finished(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'ptb.db'}") as store:
        use_store(store)
        try:
            await _conversation(tg, store)
        finally:
            use_store(None)


async def _conversation(tg: FakeTelegram, store: Store) -> None:
    persistence = TgrunnerPersistence(update_interval=3600)  # PTB's own writes: never, here
    app = (
        ApplicationBuilder().token(tg.token).base_url(f"{tg.api_url}/bot")
        .persistence(persistence).build()
    )  # fmt: skip
    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("start", _ask)],
            states={0: [MessageHandler(filters.TEXT & ~filters.COMMAND, _name)]},
            fallbacks=[],
            name="form",
            persistent=True,
        )
    )
    ann, bob = tg.user("Ann"), tg.user("Bob")
    # One update at a time: once Bob's answer is sent, Ann's update has finished.
    async with on_tgrunner(app, concurrency=1):
        ann.command("start")
        await tg.wait_for_replies(ann, 1, timeout=15)
        bob.command("start")
        await tg.wait_for_replies(bob, 1, timeout=15)
        key = f"ptb:conversation:form:[{ann.chat.id},{ann.id}]"
        assert await store.get(key) == 0, "Ann's state was written with her update"
        ann.send("Ann")
        await tg.wait_for_replies(ann, 2, timeout=15)
        carol = tg.user("Carol")
        carol.command("start")
        await tg.wait_for_replies(carol, 1, timeout=15)
        assert await store.get(key) is None, "her conversation ended"
        assert await store.get(f"ptb:user:{ann.id}") == {"name": "Ann"}
