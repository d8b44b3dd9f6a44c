"""Per-chat lanes of outgoing calls: one turn per chat, handed on in the order calls came.

A chat has a lane only while it needs one: a 429 paused it, or a call of it waits (for the
end of a pause, a bucket's slot, a backoff). The call holding the lane's *turn* is the only
one of the chat on the wire; the others wait for the turn in a FIFO of futures, and get it in
the order they came (a call that was already on the wire when the chat was paused, and must
be sent again, goes first). A lane with nobody in it is deleted once its pause is over, so a
million chats that each got a 429 once leave nothing behind.

There is no task per lane: each call waits in its own task, so cancelling a caller (its
handler's time limit) cancels its call, wherever it is, and hands the turn on.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Hashable

__all__ = ["Lane", "Lanes"]


class _Waiter:
    __slots__ = ("deadline", "future")

    def __init__(self, future: asyncio.Future[None], deadline: float) -> None:
        self.future = future
        self.deadline = deadline


class Lane:
    """One chat's lane: whether its turn is held, the calls waiting for it, its pause."""

    __slots__ = ("busy", "paused_until", "timer", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.paused_until = -math.inf
        self.waiting: deque[_Waiter] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Calls waiting for the turn (the one holding it not counted)."""
        return len(self.waiting)


class Lanes:
    """The lanes of every chat that has one, by chat key; ``clock`` gives seconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.by_key: dict[Hashable, Lane] = {}
        """The lanes by chat key (read-only: a membership test is the hot path's check)."""
        self._lanes = self.by_key
        self._clock = clock

    def __len__(self) -> int:
        return len(self._lanes)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._lanes

    def get(self, key: Hashable) -> Lane | None:
        """The chat's lane, None when it has none."""
        return self._lanes.get(key)

    def lane(self, key: Hashable) -> Lane:
        """The chat's lane, made when it has none."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
        return lane

    async def acquire(self, key: Hashable, lane: Lane, deadline: float, *, front: bool) -> None:
        """Wait for ``lane``'s turn: at once when nobody holds it, else after the calls before
        this one (``front``: before every waiting call). TimeoutError at ``deadline``; an error
        :meth:`pause` gave the waiting calls is raised as it is."""
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        if not lane.busy:
            lane.busy = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, deadline)
        if front:
            lane.waiting.appendleft(waiter)
        else:
            lane.waiting.append(waiter)
        try:
            async with asyncio.timeout(max(0.0, deadline - self._clock())):
                await future
        except BaseException:
            # The turn may have been handed over just as the wait ended: hand it on.
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(key, lane)
            else:
                with contextlib.suppress(ValueError):
                    lane.waiting.remove(waiter)
            raise

    def release(self, key: Hashable, lane: Lane) -> None:
        """Hand ``lane``'s turn to the next waiting call, or free it; a free lane is deleted
        once its pause is over."""
        waiting = lane.waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.future.done():
                waiter.future.set_result(None)
                return
        lane.busy = False
        self._idle(key, lane)

    def settle(self, key: Hashable, lane: Lane) -> None:
        """Delete ``lane`` (once its pause is over) when nobody holds or waits for its turn:
        after a call that made it left without taking the turn."""
        if not lane.busy and not lane.waiting:
            self._idle(key, lane)

    def pause(
        self, key: Hashable, lane: Lane, until: float, error: Callable[[float], BaseException]
    ) -> int:
        """No call of the lane leaves before ``until``; the waiting calls whose deadline comes
        first fail at once with ``error(seconds until the pause ends)``. How many failed."""
        if until > lane.paused_until:
            lane.paused_until = until
        late = [w for w in lane.waiting if w.deadline < until and not w.future.done()]
        if late:
            wait = until - self._clock()
            for waiter in late:
                lane.waiting.remove(waiter)
                waiter.future.set_exception(error(wait))
        if not lane.busy and not lane.waiting:
            self._idle(key, lane)
        return len(late)

    def _idle(self, key: Hashable, lane: Lane) -> None:
        delay = lane.paused_until - self._clock()
        if delay <= 0:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
        elif lane.timer is None:
            lane.timer = asyncio.get_running_loop().call_later(delay, self._expired, key, lane)

    def _expired(self, key: Hashable, lane: Lane) -> None:
        lane.timer = None
        if not lane.busy and not lane.waiting:
            self._idle(key, lane)
