"""aiogram on tgrunner under concurrency: per-chat order holds, FSM state never races, and the
keys follow the FSM strategy, so updates that share an FSM storage key share a tgrunner key."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import DisabledEventIsolation, MemoryStorage
from aiogram.fsm.strategy import FSMStrategy
from aiogram.types import (
    Message,
    Update,
)

from frontends.aiogram import aiogram_echo
from frontends.aiogram.helpers import running
from replies import tally
from tgrunner.client.bot import Bot as NativeBot
from tgrunner.frontends.aiogram import (
    event_context,
    fsm_keys,
)
from tgrunner.keys import default_keys
from tgrunner.testing import FakeTelegram

# -- order and FSM under concurrency ---------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_order_holds_for_many_users_with_interleaved_updates(tg: FakeTelegram) -> None:
    users = [tg.user(f"U{i}") for i in range(40)]
    sent: dict[int, list[str]] = {}
    n = 0
    for _round in range(10):
        for user in users:
            n += 1
            user.send(str(n))
            sent.setdefault(user.chat.id, []).append(str(n))
    async with running(aiogram_echo.create(), tg):
        await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= n, timeout=30)
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0


@pytest.mark.timeout(30)
async def test_fsm_state_never_races_under_global_user_strategy(tg: FakeTelegram) -> None:
    # The state follows the user across chats, so Alice's private chat and the group must not
    # run her updates at once: every read-modify-write of her counter sees the one before it.
    dp = Dispatcher(fsm_strategy=FSMStrategy.GLOBAL_USER)

    @dp.message(F.text)
    async def count(message: Message, state: FSMContext) -> None:
        seen = (await state.get_data()).get("n", 0)
        await asyncio.sleep(random.uniform(0.0, 0.005))
        await state.update_data(n=seen + 1)
        await message.answer(
            f"{message.from_user.first_name if message.from_user else ''} {seen + 1}"
        )

    alice, bob = tg.user("Alice"), tg.user("Bob")
    group = tg.group("G", members=[alice, bob])
    for i in range(15):
        alice.send(f"p{i}")
        alice.send(f"g{i}", chat=group)
        bob.send(f"b{i}", chat=group)
    async with running((dp, Bot(tg.token)), tg):
        await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= 45, timeout=20)
    counts: dict[str, list[int]] = {"Alice": [], "Bob": []}
    for r in tg.calls("sendMessage"):
        name, n = r.params["text"].split()
        counts[name].append(int(n))
    assert sorted(counts["Alice"]) == list(range(1, 31))
    assert sorted(counts["Bob"]) == list(range(1, 16))


# -- keys ------------------------------------------------------------------------------------------


async def varied_updates(tg: FakeTelegram) -> list[dict[str, Any]]:
    """Updates of most kinds, in private chats, a group, forum topics, a channel, business."""
    alice, bob, carol = tg.user("Alice"), tg.user("Bob"), tg.user("Carol")
    group = tg.group("G", members=[alice, bob])
    forum = tg.forum("F", members=[alice, bob])
    topic = forum.create_topic("T", by=alice)
    channel = tg.channel("C", owner=carol)
    keyboard = {"inline_keyboard": [[{"text": "b", "callback_data": "d"}]]}
    async with NativeBot(tg.token, api_url=tg.api_url) as bot:
        for chat, thread in ((alice.chat, None), (group, None), (forum, topic.id), (forum, None)):
            params = {"reply_markup": keyboard, "message_thread_id": thread}
            message = await bot.send_message(chat.id, "keys", **params)
            for user in (alice, bob) if chat.type != "private" else (alice,):
                user.press(message, data="d")
    for user in (alice, bob):
        own = user.send("hi")
        user.edit(own, "hi!")
        in_group = user.send("g", chat=group)
        user.react(in_group, "👍")
        user.send("t", chat=forum, thread=topic)
        user.send("general", chat=forum)
        user.inline_query("q")
        user.choose_inline_result("r1", "q")
        user.press_inline("inline-1", "d")
        user.shipping_query("p")
        user.pre_checkout("p")
        user.boost(forum)
    poll = alice.send_poll("?", ["a", "b"], anonymous=False, chat=group)
    bob.answer_poll(poll, [0])
    channel.post("news")
    carol.join(group)
    carol.request_join(forum)
    alice.connect_business()
    alice.business_send("hello", to=bob)
    bob.business_send("hi", to=alice)
    # A button pressed under a message the bot can no longer see (an inaccessible message).
    inaccessible = {"chat": group.as_dict(), "message_id": 1, "date": 0}
    tg.population.push(
        "callback_query",
        {"id": "q1", "from": bob.as_dict(), "message": inaccessible, "chat_instance": "1"},
    )
    return list(tg.population.updates)


def aiogram_view(update: dict[str, Any], bot: Bot, strategy: FSMStrategy) -> tuple[Any, Any]:
    """aiogram's own (chat, user, thread) and FSM storage key for an update."""
    context = UserContextMiddleware.resolve_event_context(
        Update.model_validate(update, context={"bot": bot})
    )
    fsm = FSMContextMiddleware(MemoryStorage(), DisabledEventIsolation(), strategy)
    found = fsm.resolve_context(
        bot,
        chat_id=context.chat_id,
        user_id=context.user_id,
        thread_id=context.thread_id,
        business_connection_id=context.business_connection_id,
    )
    return (context.chat_id, context.user_id, context.thread_id), found and found.key


@pytest.mark.parametrize("strategy", list(FSMStrategy))
async def test_updates_sharing_an_fsm_key_share_a_tgrunner_key(
    tg: FakeTelegram, strategy: FSMStrategy
) -> None:
    updates = await varied_updates(tg)
    keys = fsm_keys(strategy)
    by_storage_key: dict[StorageKey, list[tuple[str, ...]]] = {}
    bot = Bot(tg.token)
    for update in updates:
        context, storage_key = aiogram_view(update, bot, strategy)
        assert event_context(update) == context, update
        found = keys(update)
        assert found and all(isinstance(k, str) for k in found), update
        if storage_key is not None:
            by_storage_key.setdefault(storage_key, []).append(found)
    assert len(by_storage_key) >= 5
    for storage_key, key_sets in by_storage_key.items():
        for a in key_sets:
            for b in key_sets:
                assert set(a) & set(b), (storage_key, a, b)


async def test_keys_keep_the_default_chat_key_names(tg: FakeTelegram) -> None:
    updates = await varied_updates(tg)
    for update in updates:
        chat, user, thread = event_context(update)
        default = default_keys(update)
        for strategy in FSMStrategy:
            found = fsm_keys(strategy)(update)
            if strategy is FSMStrategy.GLOBAL_USER and user is not None:
                # The state follows the user, so the user routes (the first key picks the
                # worker process): the chat's key comes second.
                assert found[0] == f"u:{user}", update
                assert chat is None or found[1] == f"c:{chat}" == default[0], update
            elif chat is not None and thread is None:
                assert found[0] == f"c:{chat}" == default[0], (strategy, update)
    forum_topic = next(u for u in updates if event_context(u)[2] is not None and "message" in u)
    chat, _, thread = event_context(forum_topic)
    assert fsm_keys(FSMStrategy.USER_IN_TOPIC)(forum_topic) == (f"c:{chat}:{thread}",)
    assert fsm_keys(FSMStrategy.USER_IN_CHAT)(forum_topic) == (f"c:{chat}",)
    inline = next(u for u in updates if "inline_query" in u)
    user_id = inline["inline_query"]["from"]["id"]
    assert fsm_keys(FSMStrategy.USER_IN_CHAT)(inline) == (f"c:{user_id}",)
    assert fsm_keys(FSMStrategy.GLOBAL_USER)(inline) == (f"u:{user_id}",)
    assert fsm_keys(FSMStrategy.CHAT)({"update_id": 1, "message": {"bad": 1}}) == ()
