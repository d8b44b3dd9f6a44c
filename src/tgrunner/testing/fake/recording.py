"""What tests observe of FakeTelegram: the record of every call it answered, the bot's
replies, and waiting for a condition (the ``*_sync`` twins for thread mode).

:class:`Recording` is the part of :class:`~tgrunner.testing.fake.server.FakeTelegram` that keeps
:attr:`requests` and wakes waiters; the server calls :meth:`Recording._record_call` once per
answered request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.testing.fake import explain
from tgrunner.testing.fake.record import RecordedRequest
from tgrunner.testing.fake.world import State

__all__ = ["RecordedRequest", "Recording"]


def _chat_id_of(chat: Any) -> int:
    if isinstance(chat, int):
        return chat
    if isinstance(chat, dict):
        # A Chat, or a Message (whose chat is meant).
        return int(chat["id"] if "id" in chat else chat["chat"]["id"])
    chat_id = getattr(chat, "id", None)
    if chat_id is None:
        chat_id = getattr(getattr(chat, "chat", None), "id", None)
    if chat_id is None:
        raise TypeError(f"cannot tell the chat of {chat!r}")
    return int(chat_id)


class Recording:
    """The record of calls and the waits on it, mixed into FakeTelegram.

    ``requests`` holds every answered call (a list), the last N (a deque), or none, as
    FakeTelegram's ``record`` option says; ``_recorded`` counts every call recorded.
    """

    state: State
    requests: list[RecordedRequest] | deque[RecordedRequest]
    _record: bool
    _recorded: int

    def calls(self, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, all or those of one method (any case), in arrival order."""
        records = list(self.requests)
        if method is None:
            return records
        found = self.state.spec.method(method)
        name = found.name if found is not None else method
        return [r for r in records if r.method == name]

    def replies(self, chat: Any) -> list[dict[str, Any]]:
        """The messages the bot sent in ``chat`` (an id, a Chat dict, or anything with ``.id``
        or ``.chat.id``), in order, as they were sent (later edits are in the history)."""
        return self.state.replies(_chat_id_of(chat))

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once ``predicate()`` is true; it is re-checked after every recorded request,
        update and webhook delivery. Raises ``TimeoutError`` after ``timeout`` seconds, naming
        the predicate."""
        await self._wait(predicate, timeout, lambda: explain.predicate_timeout(predicate, timeout))

    async def _wait(
        self, predicate: Callable[[], bool], timeout: float, why: Callable[[], str]
    ) -> None:
        """:meth:`wait_for`, whose TimeoutError says ``why()`` (built on the server's loop)."""
        loop = asyncio.get_running_loop()
        if self.state.loop is not None and self.state.loop is not loop:
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(
                    self._wait(predicate, timeout, why), self.state.loop
                )
            )
            return
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(why())
            watcher = self.state.watch()
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(left):
                    await watcher
            except TimeoutError:
                if predicate():
                    return
                raise TimeoutError(why()) from None

    async def wait_for_replies(
        self,
        chat: Any,
        count: int,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent at least ``count`` messages in ``chat``; return them.

        The TimeoutError names the chat, the count and the replies that did arrive."""
        chat_id = _chat_id_of(chat)
        replies = self.state.bot_messages

        def enough() -> bool:
            return len(replies.get(chat_id, ())) >= count

        def why() -> str:
            return explain.replies_timeout(self.state, self.requests, chat_id, count, timeout)

        await self._wait(enough, timeout, why)
        return self.state.replies(chat_id)

    async def wait_for_call(
        self,
        method: str,
        *,
        timeout: float = 5.0,
        where: Callable[[RecordedRequest], bool] | None = None,
    ) -> RecordedRequest:
        """Wait for a request of ``method`` (any case) that satisfies ``where``; return the
        first such request, including one that came before the call.

        The TimeoutError names the method and lists the calls that did arrive."""
        found = self.state.spec.method(method)
        name = found.name if found is not None else method
        # Records are counted as they come, so a ring that dropped old ones is scanned right.
        seen = self._recorded - len(self.requests)
        match: list[RecordedRequest] = []

        def check() -> bool:
            nonlocal seen
            new = min(self._recorded - seen, len(self.requests))
            seen = self._recorded
            if new <= 0:
                return False
            records = self.requests
            fresh = records[-new:] if isinstance(records, list) else list(records)[-new:]
            for record in fresh:
                if record.method == name and (where is None or where(record)):
                    match.append(record)
                    return True
            return False

        def why() -> str:
            return explain.call_timeout(list(self.requests), name, where, timeout, self._record)

        await self._wait(check, timeout, why)
        return match[0]

    async def wait_until_polling(self, timeout: float = 10.0) -> None:
        """Wait until the bot polls: a ``getUpdates`` is waiting here or has been answered.

        Recorded calls appear only once answered, so a long poll on an empty queue would not
        show up in :meth:`wait_for_call` until its timeout; this sees it while it waits. The
        TimeoutError lists the calls that did arrive.
        """
        bot = self.state.primary
        answered = len(self.calls("getUpdates"))

        def polling() -> bool:
            return bot.long_poll is not None or len(self.calls("getUpdates")) > answered

        def why() -> str:
            records = list(self.requests)
            return explain.polling_timeout(self.state, records, self._url(), timeout, self._record)

        await self._wait(polling, timeout, why)

    def _url(self) -> str:
        return str(getattr(self, "api_url", "this FakeTelegram"))

    def _sync(self, coro_fn: Callable[[], Awaitable[Any]]) -> Any:
        loop = self.state.loop
        if loop is None or not loop.is_running():
            raise RuntimeError("the *_sync helpers need FakeTelegram running in a thread")
        if self.state._thread == threading.get_ident():
            raise RuntimeError("the *_sync helpers would block the server's own loop")

        async def run() -> Any:
            return await coro_fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    def wait_for_sync(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """:meth:`wait_for` for sync code in thread mode (``predicate`` runs on the server
        thread)."""
        self._sync(lambda: self.wait_for(predicate, timeout))

    def wait_for_replies_sync(
        self, chat: Any, count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """:meth:`wait_for_replies` for sync code in thread mode."""
        result: list[dict[str, Any]] = self._sync(
            lambda: self.wait_for_replies(chat, count, timeout)
        )
        return result

    def wait_until_polling_sync(self, timeout: float = 10.0) -> None:
        """:meth:`wait_until_polling` for sync code in thread mode."""
        self._sync(lambda: self.wait_until_polling(timeout))

    def wait_for_call_sync(
        self,
        method: str,
        *,
        timeout: float = 5.0,
        where: Callable[[RecordedRequest], bool] | None = None,
    ) -> RecordedRequest:
        """:meth:`wait_for_call` for sync code in thread mode."""
        result: RecordedRequest = self._sync(
            lambda: self.wait_for_call(method, timeout=timeout, where=where)
        )
        return result

    def _record_call(
        self, method: str, params: dict[str, Any], token: str, status: int, response: Any
    ) -> None:
        if self._record:
            self.requests.append(
                RecordedRequest(method, params, token, time.time(), status, response)
            )
            self._recorded += 1
        self.state.changed()
