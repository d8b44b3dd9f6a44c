"""What the broadcast tests share: chats in FakeTelegram, the sends it got per chat, a sender
that counts its sends in flight, and a log of the outbox read as another process would."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tgrunner.flood.broadcast import bot_sender
from tgrunner.flood.sending import Sender
from tgrunner.testing import FakeTelegram

__all__ = ["FIRST_CHAT", "WatchedSender", "add_chats", "delivered", "recipient_states"]

FIRST_CHAT = 500_000
"""The id of the first chat :func:`add_chats` makes."""


def add_chats(tg: FakeTelegram, n: int, first: int = FIRST_CHAT) -> list[int]:
    """Make ``n`` private chats known to the fake (ids ``first`` on); return their ids."""
    ids = list(range(first, first + n))
    for chat_id in ids:
        tg.state.register_chat({"id": chat_id, "type": "private", "first_name": f"U{chat_id}"})
    return ids


def delivered(tg: FakeTelegram) -> Counter[int | str]:
    """How many messages each chat got: the sendMessage calls answered 200, per chat_id."""
    return Counter(r.params["chat_id"] for r in tg.calls("sendMessage") if r.ok)


def recipient_states(path: Path, broadcast_id: int) -> dict[int | str, str]:
    """Each chat's state in the outbox file, read on a connection of its own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT chat_id, state FROM recipients WHERE broadcast = ?", (broadcast_id,)
        ).fetchall()
    finally:
        db.close()
    return dict(rows)


class WatchedSender:
    """A bot's real sender, counting the sends begun (``calls``) and in flight (``now``;
    ``most``: the peak); :meth:`reached` waits for a number of sends begun."""

    def __init__(self, bot: Any) -> None:
        self._send: Sender = bot_sender(bot)
        self.now = 0
        self.most = 0
        self.calls = 0
        self._begun = asyncio.Condition()

    async def reached(self, calls: int, timeout: float = 10) -> None:
        """Wait until ``calls`` sends have begun."""
        async with asyncio.timeout(timeout), self._begun:
            await self._begun.wait_for(lambda: self.calls >= calls)

    async def __call__(self, method: str, params: Mapping[str, Any], paid: bool) -> Any:
        self.now += 1
        self.calls += 1
        self.most = max(self.most, self.now)
        async with self._begun:
            self._begun.notify_all()
        try:
            return await self._send(method, params, paid)
        finally:
            self.now -= 1
