"""``TgrunnerStorage``, aiogram's FSM storage on a store, on every backend: states and data
round-trip (as aiogram's FSMContext uses them), emptied records leave no key, concurrent
``update_data`` calls from two stores on the same data keep every field (aiogram's own
read-then-write ``update_data`` loses some in the same harness), and the store is the one
given, the one of its URL (closed with it) or the process's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from state_backends import BACKENDS, SPANNING, fresh_url

from tgrunner.errors import StateError
from tgrunner.state import open_store, use_store
from tgrunner.state.bridges.aiogram import TgrunnerStorage

KEY = StorageKey(bot_id=42, chat_id=-100, user_id=7)


class Form(StatesGroup):
    name = State()


pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_states_and_data_round_trip(backend: str, tmp_path: Path) -> None:
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        storage = TgrunnerStorage(store)
        fsm = FSMContext(storage=storage, key=KEY)
        assert await fsm.get_state() is None and await fsm.get_data() == {}
        await fsm.set_state(Form.name)
        assert await fsm.get_state() == "Form:name"
        await fsm.set_data({"a": 1})
        assert await fsm.update_data(b=[2, "x"]) == {"a": 1, "b": [2, "x"]}
        data = await fsm.get_data()
        data["c"] = 3  # a copy
        assert await fsm.get_data() == {"a": 1, "b": [2, "x"]}
        assert await storage.get_value(KEY, "a") == 1
        state_key, data_key = storage.keys_of(KEY)
        assert state_key == "aiogram:fsm:42:-100:7:default:state"
        assert await store.get(data_key) == {"a": 1, "b": [2, "x"]}
        with pytest.raises(DataNotDictLikeError):
            await storage.set_data(KEY, [1, 2])  # type: ignore[arg-type]
        await fsm.clear()
        assert await store.get(state_key) is None and await store.get(data_key) is None
        other = StorageKey(bot_id=42, chat_id=-100, user_id=7, destiny="scene")
        await storage.set_state(other, "elsewhere")
        assert await storage.get_state(other) == "elsewhere"
        assert await storage.get_state(KEY) is None


@pytest.mark.parametrize("backend", SPANNING)
async def test_update_data_merges_atomically(backend: str, tmp_path: Path) -> None:
    # Two stores on the same data, as two worker processes would have.
    async with fresh_url(backend, tmp_path) as url, open_store(url) as one, open_store(url) as two:
        a, b = TgrunnerStorage(one), TgrunnerStorage(two)
        await asyncio.gather(
            *((a if i % 2 else b).update_data(KEY, {f"f{i}": i}) for i in range(40))
        )
        assert await a.get_data(KEY) == {f"f{i}": i for i in range(40)}
        # aiogram's own update_data (get, then set) on the same storage loses fields.
        await a.set_data(KEY, {})
        await asyncio.gather(
            *(BaseStorage.update_data(a if i % 2 else b, KEY, {f"f{i}": i}) for i in range(40))
        )
        assert len(await a.get_data(KEY)) < 40


async def test_the_store_is_given_or_its_urls_or_the_processs(tmp_path: Path) -> None:
    storage = TgrunnerStorage()
    with pytest.raises(StateError, match="there is no state store in this process"):
        await storage.get_state(KEY)
    async with open_store(f"sqlite:///{tmp_path / 'run.db'}") as store:
        use_store(store)
        try:
            await storage.set_state(KEY, "s")
            assert await store.get(storage.keys_of(KEY)[0]) == "s"
            await storage.close()  # the runtime's store stays open
            assert await storage.get_state(KEY) == "s"
        finally:
            use_store(None)
    own = TgrunnerStorage(f"sqlite:///{tmp_path / 'own.db'}")
    await own.set_data(KEY, {"x": 1})
    first = own.store
    await own.close()
    assert own.store is not first  # closed; the next use connects a new one
    assert await own.get_data(KEY) == {"x": 1}
    await own.close()
    await own.close()
