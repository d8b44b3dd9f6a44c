"""``ctx.chat_data`` and ``ctx.user_data`` (:class:`~tgrunner.state.StoredDict`) through a real
Router: a block is a transaction on its key, so random interleavings of concurrent updates,
each awaiting inside its blocks and some failing, keep every increment of the blocks that
ended and none of those that raised (hypothesis, on memory, SQLite and Redis); the same
read-await-write without the block loses increments. And the block's rules: an exception or
a non-JSON value writes nothing, an emptied dict removes its key, blocks do not nest, an
update without a chat has no chat_data, and without a store the error says how to get one."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from state_backends import fresh_url, params

from tgrunner.client.bot import Bot
from tgrunner.errors import StateError
from tgrunner.frontends.native import Context, Router
from tgrunner.state import Store, StoredDict, current_store, open_store, use_store

EXAMPLES = {"memory": 60, "sqlite": 20, "redis": 12}
_ids = itertools.count(1)


@dataclass(frozen=True)
class Msg:
    user: int
    chat: int
    pause: int  # event loop turns inside the block: 0-3, 4 = a 1 ms sleep
    fails: bool  # raises inside the user_data block, after changing it


def message(user: int, chat: int, text: str = "+1") -> dict[str, Any]:
    """A message update from user ``user`` (ids 1..) in chat ``chat`` (-1..: groups)."""
    uid = next(_ids)
    kind = "private" if chat > 0 else "group"
    return {
        "update_id": uid,
        "message": {
            "message_id": uid,
            "date": 0,
            "chat": {"id": chat, "type": kind},
            "from": {"id": user, "is_bot": False, "first_name": f"u{user}"},
            "text": text,
        },
    }


async def _pause(turns: int) -> None:
    if turns == 4:
        await asyncio.sleep(0.001)
    for _ in range(turns):
        await asyncio.sleep(0)


def counting_router(*, naive: bool = False) -> Router:
    """+1 to the sender's and the chat's ``n``, awaiting between the read and the write;
    ``naive``: read with ``get()``, then write with ``ctx.store.set``, with nothing held."""
    router = Router()

    @router.message()
    async def add(ctx: Context) -> None:
        pause, fails = ctx.data["case"]
        if naive:
            data = await ctx.user_data.get()
            seen = data.get("n", 0)
            await _pause(pause)
            await ctx.store.set(ctx.user_data.key, {"n": seen + 1})
            return
        async with ctx.user_data as data:
            seen = data.get("n", 0)
            await _pause(pause)
            data["n"] = seen + 1
            if fails:
                raise ValueError("refused")
        async with ctx.chat_data as chat:
            chat["n"] = chat.get("n", 0) + 1

    @router.use
    async def case(ctx: Context, call_next: Any) -> None:
        ctx.data["case"] = CASES[ctx.update_id]
        await call_next()

    return router


CASES: dict[int, tuple[int, bool]] = {}


async def run_messages(store: Store, router: Router, msgs: list[Msg]) -> None:
    use_store(store)
    try:
        async with Bot("1:unused", api_url="http://127.0.0.1:9") as bot:
            updates = []
            for m in msgs:
                update = message(m.user, m.chat)
                CASES[update["update_id"]] = (m.pause, m.fails)
                updates.append(update)
            await asyncio.gather(*(router(u, bot) for u in updates), return_exceptions=True)
    finally:
        use_store(None)


msg = st.builds(
    Msg,
    user=st.integers(1, 3),
    chat=st.sampled_from([1, 2, 3, -1, -2]),
    pause=st.integers(0, 4),
    fails=st.booleans(),
)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", params("memory", "sqlite", "redis"))
def test_concurrent_blocks_keep_every_increment_of_those_that_ended(
    backend: str, tmp_path: Path
) -> None:
    async def scenario(msgs: list[Msg]) -> None:
        async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
            await run_messages(store, counting_router(), msgs)
            done = [m for m in msgs if not m.fails]
            for user, n in Counter(m.user for m in done).items():
                assert await store.get(f"user:{user}") == {"n": n}
            for chat, n in Counter(m.chat for m in done).items():
                assert await store.get(f"chat:{chat}") == {"n": n}
            for user in {m.user for m in msgs} - {m.user for m in done}:
                assert await store.get(f"user:{user}") is None  # a failed block wrote nothing

    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(msg, min_size=1, max_size=25))
    def check(msgs: list[Msg]) -> None:
        asyncio.run(scenario(msgs))

    check()


@pytest.mark.timeout(30)
async def test_the_same_increments_without_the_block_are_lost(tmp_path: Path) -> None:
    async with fresh_url("sqlite", tmp_path) as url, open_store(url) as store:
        msgs = [Msg(user=1, chat=c, pause=4, fails=False) for c in (1, -1, -2, -3) * 5]
        await run_messages(store, counting_router(naive=True), msgs)
        assert (await store.get("user:1"))["n"] < len(msgs)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{tmp_path / 'data.db'}") as opened:
        use_store(opened)
        try:
            yield opened
        finally:
            use_store(None)


@pytest.mark.timeout(30)
async def test_a_block_commits_its_dict_and_nothing_on_errors(store: Store) -> None:
    data = StoredDict("user:7")
    assert data.key == "user:7" and await data.get() == {}
    async with data as d:
        d["name"] = "Ann"
    assert await store.get("user:7") == {"name": "Ann"}

    async def fails() -> None:
        async with data as d:
            d["name"] = "Bob"
            raise KeyError("no")

    with pytest.raises(KeyError):
        await fails()
    with pytest.raises(TypeError, match="is not JSON"):
        async with data as d:
            d["when"] = object()
    assert await data.get() == {"name": "Ann"}  # neither change was written
    async with data as d:  # the key's lock was let go each time
        d.clear()
    assert await store.get("user:7") is None  # an emptied dict removes its key
    copy = await data.get()
    copy["x"] = 1
    assert await data.get() == {}
    await store.set("user:8", [1, 2])
    with pytest.raises(TypeError, match="holds a list, not a dict"):
        await StoredDict("user:8").get()


@pytest.mark.timeout(30)
async def test_blocks_do_not_nest_and_both_keys_go_in_one_transaction(
    tg: Any, store: Store
) -> None:
    router = Router()
    seen: list[Any] = []

    @router.message()
    async def both(ctx: Context) -> None:
        if ctx.text == "nested":
            async with ctx.chat_data, ctx.user_data:
                pass
        async with ctx.store.transaction(ctx.chat_data.key, ctx.user_data.key) as tx:
            tx.set(ctx.chat_data.key, {"last": ctx.user["id"]})  # type: ignore[index]
            tx.set(ctx.user_data.key, {"chats": [ctx.chat_id]})
        seen.append((await ctx.chat_data.get(), await ctx.user_data.get()))

    async with Bot(tg.token, api_url=tg.api_url) as bot:
        with pytest.raises(RuntimeError, match="transactions do not nest"):
            await router(message(5, -9, "nested"), bot)
        await router(message(5, -9, "both"), bot)
        assert seen == [({"last": 5}, {"chats": [-9]})]
        poll = {"update_id": 1, "poll": {"id": "p", "question": "?", "options": []}}
        ctx = Context(poll, "poll", bot)
        with pytest.raises(ValueError, match="this update has no chat_data"):
            async with ctx.chat_data:
                pass
        assert ctx.store is store


@pytest.mark.timeout(30)
async def test_without_a_store_the_error_says_how_to_get_one() -> None:
    with pytest.raises(StateError, match="run the bot with 'tgrunner run'"):
        current_store()
    with pytest.raises(StateError, match=r"use_store\(open_store\(URL\)\)"):
        await StoredDict("chat:1").get()
