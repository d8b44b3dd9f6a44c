"""The polling source: ``getUpdates`` with backpressure, id restarts and Telegram's errors.

The runtime tells the source, with :meth:`PollingSource.confirm`, which offset is safe to send:
one past the last journaled update, or (strict offsets, ``--no-journal``) the oldest unfinished
one. Updates Telegram sends again (in flight past a strict offset) are recognised by id and
skipped. Because one call returns at most 100 updates counted from the offset, with strict
offsets at most 100 updates can be in flight; the source then waits for the offset to move.

Update ids that come back *below* the offset just sent cannot be redeliveries (Telegram forgot
everything below it): Telegram restarted its ids, as it does at random after a quiet week. The
source logs it and returns them as new.

Errors, as Telegram means them:
- at start, network errors, 5xx and 429 are retried with backoff for up to ``start_timeout``
  (60 s), then reported as a configuration error;
- network errors and 5xx: capped exponential backoff with full jitter, reset on success;
- 429: wait ``retry_after``;
- 401: stop with :class:`~tgrunner.errors.ConfigError` saying the token was rejected;
- 409: stop with a message that says which conflict (a webhook is set, or another instance
  polls with the same token);
- an answer that is not a list of updates: :class:`~tgrunner.errors.BadAnswer`;
- at start, an HTTP answer that is not the Bot API's (a web page, a proxy's 4xx page):
  :class:`~tgrunner.errors.ConfigError` at once, as retrying cannot help.

After one or more failed fetches, the first that succeeds logs "reconnected" (INFO); each fetch
is logged at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.errors import (
    BadAnswer,
    ConfigError,
    Conflict,
    NetworkError,
    NotFound,
    RetryAfter,
    ServerError,
    TelegramError,
    Unauthorized,
    UnexpectedAnswer,
)

__all__ = ["UPDATE_KINDS", "PollingOptions", "PollingSource", "check_update_kinds", "reach_api"]

log = logging.getLogger(__name__)

# Telegram returns at most this many updates per getUpdates call.
MAX_BATCH = 100

Update = dict[str, Any]

UPDATE_KINDS = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "guest_message",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "managed_bot",
)
"""The kinds of update of Bot API 10.1 (the fields of ``Update``), for ``allowed_updates``."""


def check_update_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple when each is one of :data:`UPDATE_KINDS`; else ValueError naming
    the closest kind, or listing them all."""
    kinds = tuple(kinds)
    for kind in kinds:
        if kind not in UPDATE_KINDS:
            close = difflib.get_close_matches(kind, UPDATE_KINDS, n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"the kinds: {', '.join(UPDATE_KINDS)}"
            )
            raise ValueError(f"has an unknown update kind {kind!r}; {hint}")
    return kinds


@dataclass(frozen=True, slots=True)
class PollingOptions:
    """Options of the polling source.

    - ``timeout``: long-poll seconds per ``getUpdates``, default 30.
    - ``limit``: most updates per call, 1–100, default 100 (less when the scheduler is full).
    - ``allowed_updates``: kinds to receive; ``None`` (default) keeps Telegram's setting.
    - ``drop_pending_updates``: skip the backlog on start, default False.
    - ``backoff_base`` / ``backoff_cap``: seconds for network and 5xx retries, default 0.5 / 30.
    - ``start_timeout``: seconds start-up keeps retrying an unreachable API (network errors,
      5xx, 429) before it gives up with a ConfigError, default 60.
    """

    timeout: int = 30
    limit: int = MAX_BATCH
    allowed_updates: tuple[str, ...] | None = None
    drop_pending_updates: bool = False
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    start_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_BATCH:
            raise ConfigError(f"polling limit must be between 1 and 100, got {self.limit}")
        if self.timeout < 0:
            raise ConfigError(f"polling timeout must be 0 or more seconds, got {self.timeout}")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ConfigError("backoff_base must be > 0 and backoff_cap >= backoff_base")
        if self.start_timeout < 0:
            raise ConfigError(f"start_timeout must be 0 or more seconds, got {self.start_timeout}")
        if isinstance(self.allowed_updates, str):
            raise ConfigError("allowed_updates is a list of update kinds, not one string")


def conflict_message(exc: Conflict) -> str:
    """Say which 409 conflict happened and what to do about it."""
    if "webhook" in exc.description.lower():
        return (
            "Telegram refuses getUpdates because a webhook is set for this bot. Remove it with "
            "'tgrunner delete-webhook' (the Bot API's deleteWebhook method), then start again."
        )
    return (
        "Another instance is polling with this bot token (409: terminated by other getUpdates "
        "request). Stop the other instance; only one poller per token can run."
    )


def _checked(updates: Any) -> list[Update]:
    if type(updates) is list:
        for u in updates:
            if type(u) is not dict or type(u.get("update_id")) is not int:
                break
        else:
            return updates
    raise BadAnswer(
        "getUpdates",
        f"the answer is not a list of updates: {str(updates)[:120]}. Check --api-url: "
        "is it a Bot API server?",
    )


class PollingSource:
    """Fetch batches of new updates from ``getUpdates``.

    ``next_batch(capacity)`` returns the updates not returned before, in update_id order.
    ``confirm(offset)`` says Telegram may forget every update below ``offset``; the next call
    sends it. Until the first ``confirm``, the source asks from Telegram's own offset.
    """

    name = "polling"
    """The ``source`` label of its updates' metrics."""

    def __init__(self, bot: Bot, options: PollingOptions) -> None:
        self.bot = bot
        self.options = options
        self._advanced = asyncio.Event()
        self._failures = 0  # consecutive failed fetches
        self._outage_since = 0.0  # when the first of them failed
        self._stale = 0  # consecutive fetches that brought nothing new
        self._offset = -1  # confirmed: Telegram may forget what is below it
        self._sent = -1  # the offset of the last successful getUpdates
        self._highest = -1  # the highest update_id returned
        self._window: deque[int] = deque()  # returned ids not yet below the offset
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    @property
    def description(self) -> str:
        """What the start-up line says of this source: ``polling <API URL>``."""
        return f"polling {self.bot.api_url}"

    @property
    def in_flight(self) -> int:
        """Updates returned and not yet confirmable (at most 100, with strict offsets)."""
        return len(self._window)

    def confirm(self, offset: int) -> None:
        """Telegram may forget every update below ``offset``; it is sent with the next call."""
        if offset <= self._offset:
            return
        self._offset = offset
        self._highest = max(self._highest, offset - 1)
        window = self._window
        while window and window[0] < offset:
            window.popleft()
        self._advanced.set()

    async def start(self) -> None:
        """Check the token with ``getMe``, retrying an unreachable API for ``start_timeout``."""
        opts = self.options
        await reach_api(self.bot, opts, sleep=self.sleep)
        if opts.drop_pending_updates:
            log.debug("dropping the updates pending at Telegram (--drop-pending-updates)")
            await self.bot.delete_webhook(drop_pending_updates=True)

    async def _wait_for_room(self) -> None:
        # With strict offsets Telegram answers at once while updates are in flight past the
        # offset, so fetching again right away would spin on redeliveries. With the window
        # full, wait for the offset to move. After a fetch that brought nothing new, wait for
        # it to move or for a short, growing pause, so a slow handler at the head does not
        # hide new updates.
        while len(self._window) >= MAX_BATCH:
            self._advanced.clear()
            await self._advanced.wait()
        if self._stale and self._window:
            self._advanced.clear()
            pause = min(0.5, 0.005 * 2 ** min(self._stale, 7))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races with the event being set, and the runner's stop would be lost.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._advanced.wait()

    async def next_batch(self, capacity: int) -> list[Update]:
        """Fetch once (retrying errors as Telegram means them) and return the new updates."""
        await self._wait_for_room()
        in_flight = len(self._window)
        limit = min(self.options.limit, in_flight + max(capacity, 1), MAX_BATCH)
        # Long-poll only when nothing is in flight: else Telegram answers at once anyway.
        timeout = 0 if in_flight else self.options.timeout
        offset = self._offset if self._offset >= 0 else None
        updates = await self._fetch(offset, limit, timeout)
        if offset is not None:
            self._sent = offset
        if updates and offset is not None and updates[0]["update_id"] < offset:
            log.warning(
                "update ids restarted at %d, below the offset %d (Telegram does this after a "
                "quiet week); handling them as new updates",
                updates[0]["update_id"],
                offset,
            )
            self._highest = -1
            self._offset = -1
            self._window.clear()
        highest = self._highest
        fresh = [u for u in updates if u["update_id"] > highest]
        if fresh:
            self._highest = fresh[-1]["update_id"]
            self._window.extend(u["update_id"] for u in fresh)
        self._stale = 0 if fresh else self._stale + 1
        log.debug(
            "getUpdates: %d update(s), %d new (offset %s, limit %d, timeout %d s)",
            len(updates),
            len(fresh),
            offset,
            limit,
            timeout,
        )
        return fresh

    async def _fetch(self, offset: int | None, limit: int, timeout: int) -> list[Update]:
        while True:
            try:
                updates = _checked(
                    await self.bot.get_updates(
                        offset=offset,
                        limit=limit,
                        timeout=timeout,
                        allowed_updates=self.options.allowed_updates,
                    )
                )
                if self._failures:
                    self._reconnected()
                return updates
            except RetryAfter as exc:
                delay = float(exc.retry_after or 1)
                log.warning("getUpdates hit flood control; waiting %.1f s as Telegram asks", delay)
                await self.sleep(delay)
            except (NetworkError, ServerError) as exc:
                if not self._failures:
                    self._outage_since = time.monotonic()
                self._failures += 1
                ceiling = min(
                    self.options.backoff_cap, self.options.backoff_base * 2 ** (self._failures - 1)
                )
                delay = random.uniform(ceiling / 2, ceiling)
                log.warning(
                    "getUpdates failed (%s); retrying in %.2f s (failure %d in a row)",
                    exc,
                    delay,
                    self._failures,
                )
                await self.sleep(delay)
            except Unauthorized as exc:
                raise ConfigError(
                    "Telegram rejected the bot token (401 Unauthorized) while polling. "
                    "The token was revoked or is wrong; get a new one from @BotFather."
                ) from exc
            except Conflict as exc:
                raise ConfigError(conflict_message(exc)) from exc
            except TelegramError as exc:
                raise ConfigError(
                    f"getUpdates was refused: {exc.description}. Check --allowed-updates "
                    "(TGRUNNER_ALLOWED_UPDATES) and --poll-timeout."
                ) from exc

    def _reconnected(self) -> None:
        log.info(
            "reconnected to %s after %.1f s / %d failed attempt(s)",
            self.bot.api_url,
            time.monotonic() - self._outage_since,
            self._failures,
        )
        self._failures = 0

    async def close(self) -> None:
        """Send the confirmed offset, so Telegram forgets what is done or journaled.

        Errors are logged, not raised: unconfirmed updates are only redelivered, never lost.
        """
        offset = self._offset
        if offset < 0 or offset == self._sent:
            return
        try:
            await self.bot.get_updates(offset=offset, limit=1, timeout=0)
            self._sent = offset
        except Exception as exc:  # the stop must complete; redelivery is the safe outcome
            log.warning(
                "could not confirm offset %d on stop (%s); updates will be redelivered",
                offset,
                exc,
            )


async def reach_api(
    bot: Bot,
    opts: PollingOptions,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Check the token with ``getMe``; retry an unreachable API (network errors, 5xx, 429)
    with backoff for ``opts.start_timeout`` seconds. Raises ConfigError for a bad token, a
    server that is not the Bot API, or one still unreachable at the deadline. Any source
    calls it at start (a webhook too)."""
    deadline = time.monotonic() + opts.start_timeout
    failures = 0
    while True:
        try:
            await bot.get_me()
            break
        except UnexpectedAnswer as exc:
            raise ConfigError(f"{bot.api_url} is not a Bot API server: {exc}.") from exc
        except NotFound as exc:
            raise ConfigError(
                f"{bot.api_url} answered getMe with 404 Not Found. Give --api-url "
                "(or TGRUNNER_API_URL) as the Bot API server's root URL, such as "
                "https://api.telegram.org, without /bot."
            ) from exc
        except (NetworkError, ServerError, RetryAfter) as exc:
            failures += 1
            left = deadline - time.monotonic()
            if isinstance(exc, RetryAfter):
                delay = float(exc.retry_after or 1)
            else:
                delay = min(opts.backoff_cap, opts.backoff_base * 2 ** (failures - 1))
                # The last try comes at the deadline, not a whole backoff step before it.
                delay = min(random.uniform(delay / 2, delay), max(left, 0.0))
            if left <= 0 or delay > left:
                raise ConfigError(
                    f"Cannot reach the Bot API at {bot.api_url} ({exc}) after "
                    f"{opts.start_timeout:g} s. Check --api-url (or TGRUNNER_API_URL), "
                    "--proxy and the network."
                ) from exc
            log.warning("getMe failed (%s); retrying in %.1f s", exc, delay)
            await sleep(delay)
        except Unauthorized as exc:
            raise ConfigError(
                "Telegram rejected the bot token (401 Unauthorized). Check the token you "
                "passed (--token, TGRUNNER_TOKEN or BOT_TOKEN) against @BotFather."
            ) from exc
    if failures:
        log.info("reached %s after %d failed attempt(s)", bot.api_url, failures)
