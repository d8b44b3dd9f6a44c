"""Flood control of outgoing calls: the one place every front-end's Bot API calls go through.

::

    flood = FloodControl(FloodOptions())               # reactive, the default
    resp = await flood.call("sendMessage", chat_id, lambda: http.request(...))

``exchange`` sends one HTTP request and returns its response; flood control may call it again
to resend. What it does with a call (see :class:`~tgrunner.flood.options.FloodOptions`):

- **A call without a chat** (``getUpdates``, ``answerCallbackQuery``) is sent as it is.
- **A chat's calls leave in the order they were made.** While nothing holds the chat back, a
  call goes straight out (the hot path: a dict lookup). Once something does (a 429, a bucket,
  a backoff), the chat gets a lane (:mod:`.lanes`): its calls wait there, in order, one on the
  wire at a time, until the lane is empty again.
- **A 429 pauses only its chat** (and, for a broadcast send, the bulk bucket) for
  ``retry_after`` plus a jitter of up to 10 % (at least 50 ms), then the call is sent again,
  first in its lane. Other chats are never held.
- **5xx** answers are resent up to ``retries`` (3) times, with capped exponential backoff and
  jitter; a **network error** only when the request provably never left
  (``TransportError.sent`` is False: refused connect, DNS), or the method is safe to repeat
  (:func:`tgrunner.client.retry.may_resend`). A send is never resent blindly. When the
  retries are spent, the last answer (or error) is the caller's.
- **telegram mode** also keeps token buckets at Telegram's limits: ``private`` per private
  chat (id > 0), ``group`` per group or channel (id < 0 or ``@name``), counted for the send
  methods (``send*`` but ``sendChatAction``, ``copyMessage(s)``, ``forwardMessage(s)``).
- **Broadcasts** (``bulk=True``; ``paid=True`` for paid ones) wait for a slot of the global
  ``bulk`` (``paid``) bucket first, in every mode, outside their chat's lane, so replies never
  queue behind them.
- **Bounds.** A call that would leave more than ``max_wait`` seconds after it was made (after
  its first answer, for a call that went straight out), or whose chat already has
  ``max_queue`` calls waiting, fails at once with :class:`~tgrunner.errors.FloodLimited`.
- **Flat memory.** A lane is deleted when it empties and its pause is over; buckets are
  reclaimed when idle (:class:`~tgrunner.flood.buckets.BucketTable`).
- **Shared buckets.** With ``shared`` (:class:`~tgrunner.protocols.SharedBuckets`), the global
  buckets (``"bulk"``, ``"paid"``) and their pauses are shared; with ``shared_chats`` too, every
  chat's bucket and pause (``"chat:<id>"``), one round trip per call of a chat.

One FloodControl per process and bot, used from one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from tgrunner.client.retry import may_resend
from tgrunner.client.transports.errors import TransportError
from tgrunner.errors import ConfigError, FloodLimited
from tgrunner.flood.buckets import BucketTable, Rate
from tgrunner.flood.calls import (
    A,
    Answer,
    Exchange,
    chat_key,
    is_counted,
    margined,
    retry_after_of,
)
from tgrunner.flood.lanes import Lane, Lanes
from tgrunner.flood.options import FloodOptions
from tgrunner.flood.remote import Remote
from tgrunner.protocols import SharedBuckets

__all__ = ["FloodControl", "FloodStats", "flood_control"]

log = logging.getLogger(__name__)


_BULK = ("bulk",)  # the global buckets' keys in the table, apart from any chat's
_PAID = ("paid",)
# In reactive mode a shared chat bucket only carries pauses: a rate no bot reaches.
_PAUSES_ONLY = Rate(1e9, 10**9)


@dataclass(slots=True)
class FloodStats:
    """Counts since start: ``floods`` (429 answers to calls of a chat), ``resends`` (sends
    after a call's first), ``limited`` (FloodLimited raised)."""

    floods: int = 0
    resends: int = 0
    limited: int = 0


class _Call:
    """One call on the slow path: what it sends and how far it got."""

    __slots__ = ("bulk", "deadline", "key", "method", "not_before", "paid", "tries")

    def __init__(self, method: str, key: int | str, bulk: bool, paid: bool, now: float) -> None:
        self.method = method
        self.key = key
        self.bulk = bulk
        self.paid = paid
        self.deadline = now
        self.not_before = now
        self.tries = 0  # sends after the first


class FloodControl:
    """Pace, order and retry one bot's outgoing calls (see the module doc).

    - ``options``: :class:`FloodOptions` (default: reactive, Telegram's rates, 60 s
      ``max_wait``); mode ``off`` is a ConfigError: use no FloodControl (None) instead.
    - ``shared`` (default None): buckets shared with other processes for the global buckets;
      ``shared_chats`` (default False): for every chat's bucket and pause too.
    - ``clock`` (default ``time.monotonic``) and ``random`` (default ``random.random``): for
      tests.

    ``stats`` counts 429s, resends and refusals.
    """

    def __init__(
        self,
        options: FloodOptions | None = None,
        *,
        shared: SharedBuckets | None = None,
        shared_chats: bool = False,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = random.random,
    ) -> None:
        options = options or FloodOptions()
        if not options.enabled:
            raise ConfigError("flood mode off means no flood control: use None, not a FloodControl")
        self.options = options
        self.stats = FloodStats()
        self._clock = clock
        self._random = random
        self._lanes = Lanes(clock)
        self._has_lane = self._lanes.by_key  # ``key in``: no method call on the hot path
        self._buckets = BucketTable()
        self._telegram = options.mode == "telegram"
        self._replies_bulk = options.replies_count_against_bulk
        self._remote = Remote(None, clock)
        self._shared_chats = False
        self._round_trip = False
        self.share(shared, chats=shared_chats)
        self._paced = self._telegram or self._replies_bulk
        self._retries = options.retries
        margin = options.margin
        self._private = margined(options.private, margin)
        self._group = margined(options.group, margin)
        self._bulk = margined(options.bulk, margin)
        self._paid = margined(options.paid, margin)

    def __repr__(self) -> str:
        return f"FloodControl({self.options.describe()})"

    def share(self, shared: SharedBuckets | None, *, chats: bool = False) -> None:
        """Use ``shared`` buckets from now on (None: this process's own): for the global
        buckets, and with ``chats`` for every chat's bucket and pause too. When the shared
        buckets fail (:class:`~tgrunner.errors.FloodStoreUnavailable`), calls fall back to
        this process's own, with a warning at most once a minute."""
        self._remote.shared = shared
        self._shared_chats = chats and shared is not None
        # Calls that cannot be decided without a round trip to the shared buckets.
        self._round_trip = self._shared_chats or (self._replies_bulk and shared is not None)

    async def close(self) -> None:
        """Close the shared buckets, if any; calls go on with this process's own. Safe to
        call twice."""
        shared = self._remote.shared
        self.share(None)
        if shared is not None:
            await shared.close()

    @property
    def lanes(self) -> int:
        """Chats that have a lane now (paused, or with calls waiting)."""
        return len(self._lanes)

    def paused(self, chat_id: object) -> float:
        """Seconds until the chat may send again (0.0: it may now)."""
        lane = self._lanes.get(chat_key(chat_id))
        return 0.0 if lane is None else max(0.0, lane.paused_until - self._clock())

    async def call(
        self,
        method: str,
        chat_id: object,
        exchange: Exchange[A],
        *,
        bulk: bool = False,
        paid: bool = False,
    ) -> A:
        """Send one call of ``method`` into ``chat_id`` (None: no chat) through ``exchange``,
        with the flood handling of the module doc; its last answer.

        ``bulk`` marks a broadcast send (the bulk bucket), ``paid`` a paid one (the paid
        bucket). Raises :class:`~tgrunner.errors.FloodLimited` over a bound, and the
        exchange's TransportError when it may not be retried (or the retries are spent).
        """
        if chat_id is None:
            return await exchange()
        key = chat_id if type(chat_id) is int else chat_key(chat_id)
        if bulk or paid or self._round_trip or key in self._has_lane:
            return await self._slow(method, key, exchange, bulk or paid, paid)
        if self._paced and not self._slot_now(method, key):
            return await self._slow(method, key, exchange, False, False)
        try:
            resp = await exchange()
        except TransportError as exc:
            return await self._slow(method, key, exchange, False, False, error=exc)
        status = resp.status
        if status == 429 or (status >= 500 and self._retries):
            return await self._slow(method, key, exchange, False, False, answer=resp)
        return resp

    # -- the slow path ------------------------------------------------------------------------

    def _slot_now(self, method: str, key: int | str) -> bool:
        """Take the call's bucket slots when it may leave now (telegram mode, replies counted
        against bulk); False, with nothing taken, when it must wait."""
        if not is_counted(method):
            return True
        now = self._clock()
        if self._telegram:
            rate = self._chat_rate(key)
            if self._buckets.peek(key, rate, now) > now:
                return False
            self._buckets.reserve(key, rate, now)
        if self._replies_bulk:
            self._buckets.reserve(_BULK, self._bulk, now)
        return True

    def _chat_rate(self, key: int | str) -> Rate:
        return self._private if type(key) is int and key > 0 else self._group

    async def _slow(
        self,
        method: str,
        key: int | str,
        exchange: Exchange[A],
        bulk: bool,
        paid: bool,
        *,
        answer: A | None = None,
        error: TransportError | None = None,
    ) -> A:
        now = self._clock()
        call = _Call(method, key, bulk, paid, now)
        call.deadline = now + self.options.max_wait
        sent = answer is not None or error is not None
        if error is not None:
            self._after_error(call, error)
        elif answer is not None and answer.status != 429:
            call.tries = 1
            call.not_before = now + self._backoff(1)
        if bulk:
            await self._bulk_slot(call)  # outside the chat's lane: replies go first
        lanes = self._lanes
        lane = lanes.lane(key)
        try:
            if answer is not None and answer.status == 429:
                await self._flooded(call, lane, answer)
            self._check_room(call, lane, self._clock())
            await lanes.acquire(key, lane, call.deadline, front=sent)
        except TimeoutError:
            lanes.settle(key, lane)
            wait = lane.paused_until - self._clock()
            raise self._limited(call, wait, f"waited {self._max_wait} for its turn") from None
        except BaseException:
            lanes.settle(key, lane)
            raise
        try:
            while True:
                await self._ready(call, lane)
                if sent:
                    self.stats.resends += 1
                sent = True
                try:
                    resp = await exchange()
                except TransportError as exc:
                    self._after_error(call, exc)
                    continue
                status = resp.status
                if status == 429:
                    await self._flooded(call, lane, resp)
                    if call.bulk:
                        await self._bulk_slot(call)
                    continue
                if status >= 500 and call.tries < self._retries:
                    call.tries += 1
                    call.not_before = self._clock() + self._backoff(call.tries)
                    continue
                return resp
        finally:
            lanes.release(key, lane)

    def _check_room(self, call: _Call, lane: Lane, now: float) -> None:
        """FloodLimited now when the call could not leave in time, or its lane is full."""
        if len(lane) >= self.options.max_queue:
            raise self._limited(
                call,
                max(1.0, lane.paused_until - now),
                f"{len(lane)} calls wait already, the bound (max_queue)",
            )
        at = lane.paused_until
        if self._telegram and is_counted(call.method) and not self._shared_chats:
            rate = self._chat_rate(call.key)
            ahead = len(lane) + lane.busy  # they take their slots as they leave
            at = max(at, self._buckets.peek(call.key, rate, now)) + ahead * rate.interval
        if at > call.deadline:
            raise self._limited(call, at - now, self._too_long(at - now))

    async def _ready(self, call: _Call, lane: Lane) -> None:
        """Wait, holding the lane's turn, until the call may leave: its chat's pause, its
        backoff, and its chat's bucket (telegram mode, or shared chats); then take its
        slots."""
        counted = is_counted(call.method)
        local = self._telegram and counted and not self._shared_chats
        while True:
            now = self._clock()
            at = max(lane.paused_until, call.not_before)
            if local:
                # The slot is taken when the call leaves, not before: a call that wakes late
                # moves the bucket on from when it really left, as Telegram counts it.
                at = max(at, self._buckets.peek(call.key, self._chat_rate(call.key), now))
            if at > now:
                if at > call.deadline:
                    raise self._limited(call, at - now, self._too_long(at - now))
                await asyncio.sleep(at - now)
                continue
            if local:
                self._buckets.reserve(call.key, self._chat_rate(call.key), now)
            elif self._shared_chats:
                wait = await self._shared_slot(call, counted, now)
                if wait > 0:
                    if now + wait > call.deadline:
                        raise self._limited(call, wait, self._too_long(wait))
                    await asyncio.sleep(wait)
                    if lane.paused_until > self._clock():
                        continue  # paused meanwhile (a call that was on the wire got a 429)
            if self._replies_bulk and counted and not call.bulk:
                await self._count_reply(now)
            return

    async def _shared_slot(self, call: _Call, counted: bool, now: float) -> float:
        """Take the call's slot of its chat's shared bucket: seconds to wait for it (this
        process's bucket when the shared ones fail)."""
        paced = self._telegram and counted
        rate = self._chat_rate(call.key) if paced else _PAUSES_ONLY
        wait = await self._remote.reserve(f"chat:{call.key}", rate)
        if wait is not None:
            return wait
        if not paced:
            return 0.0
        return self._buckets.reserve(call.key, rate, now) - now

    async def _count_reply(self, now: float) -> None:
        """A reply takes a slot of the bulk bucket, and leaves without waiting for it."""
        if await self._remote.reserve("bulk", self._bulk) is None:
            self._buckets.reserve(_BULK, self._bulk, now)

    async def _bulk_slot(self, call: _Call) -> None:
        """Wait for a slot of the bulk (paid) bucket, after its pause."""
        name, key = ("paid", _PAID) if call.paid else ("bulk", _BULK)
        rate = self._paid if call.paid else self._bulk
        buckets = self._buckets
        while True:
            now = self._clock()
            remote = await self._remote.reserve(name, rate)
            if remote is not None:
                wait = max(remote, buckets.paused_until(key) - now)
            else:
                at = buckets.peek(key, rate, now)
                if at > call.deadline:
                    raise self._limited(call, at - now, self._too_long(at - now, name))
                wait = buckets.reserve(key, rate, now) - now
            if now + wait > call.deadline:
                raise self._limited(call, wait, self._too_long(wait, name))
            if wait > 0:
                await asyncio.sleep(wait)
            if buckets.paused_until(key) <= self._clock():
                return

    async def _flooded(self, call: _Call, lane: Lane, resp: Answer) -> None:
        """A 429: pause the call's chat (and its bulk bucket) for retry_after plus jitter."""
        self.stats.floods += 1
        retry_after = retry_after_of(resp)
        pause = retry_after + max(0.05, self._random() * 0.1 * retry_after)
        until = self._clock() + pause
        log.debug("%s into chat %s: 429, chat paused for %.2f s", call.method, call.key, pause)

        def refuse(wait: float) -> FloodLimited:
            return self._limited(
                call, wait, f"paused by a 429 for {wait:.1f} s, past {self._max_wait}"
            )

        self._lanes.pause(call.key, lane, until, refuse)
        if call.bulk:
            self._buckets.pause(_PAID if call.paid else _BULK, until)
            await self._remote.pause("paid" if call.paid else "bulk", pause)
        if self._shared_chats:
            await self._remote.pause(f"chat:{call.key}", pause)

    def _after_error(self, call: _Call, error: TransportError) -> None:
        """Back off before a resend the error allows; else raise it."""
        may = not error.sent or may_resend(call.method, error)
        if not may or call.tries >= self._retries:
            raise error
        call.tries += 1
        call.not_before = self._clock() + self._backoff(call.tries)
        log.debug("%s: resending after %s", call.method, error)

    def _backoff(self, tries: int) -> float:
        options = self.options
        full = min(options.max_backoff, options.backoff * 2 ** (tries - 1))
        return full * (0.5 + self._random() / 2)

    @property
    def _max_wait(self) -> str:
        return f"max_wait ({self.options.max_wait:g} s)"

    def _too_long(self, wait: float, bucket: str | None = None) -> str:
        where = f"for the {bucket} bucket " if bucket else ""
        return f"would wait {wait:.1f} s {where}to leave, past {self._max_wait}"

    def _limited(self, call: _Call, wait: float, why: str) -> FloodLimited:
        self.stats.limited += 1
        return FloodLimited(
            call.method,
            max(0.0, wait),
            f"not sent into chat {call.key}: {why}; send it later, or raise the bound "
            "(--flood-max-wait)",
        )


def flood_control(
    options: FloodOptions | None,
    *,
    shared: SharedBuckets | None = None,
    shared_chats: bool = False,
) -> FloodControl | None:
    """The FloodControl of ``options`` (default: reactive), or None in ``off`` mode."""
    options = options or FloodOptions()
    if not options.enabled:
        return None
    return FloodControl(options, shared=shared, shared_chats=shared_chats)
