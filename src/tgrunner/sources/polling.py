"""The polling source: ``getUpdates`` with safe offsets, backpressure and Telegram's errors.

The offset sent to Telegram is always the watermark's: the oldest unfinished update, so a crash
at any moment means redelivery, never loss. Telegram then sends back the updates still in
flight along with new ones; they are recognised by id and skipped. Because one call returns at
most 100 updates counted from the offset, at most 100 updates can be in flight past the oldest
unfinished one; the source asks for as many as the scheduler can take and waits for the
watermark to move when that window is full.

Errors, as Telegram means them:
- network errors and 5xx: capped exponential backoff with full jitter, reset on success;
- 429: wait ``retry_after``;
- 401: stop with :class:`~tgrunner.errors.ConfigError` saying the token was rejected;
- 409: stop with a message that says which conflict (a webhook is set, or another instance
  polls with the same token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.errors import (
    ConfigError,
    Conflict,
    NetworkError,
    RetryAfter,
    ServerError,
    TelegramError,
    Unauthorized,
)
from tgrunner.intake.journal import Journal
from tgrunner.intake.watermark import Watermark

__all__ = ["PollingOptions", "PollingSource"]

log = logging.getLogger(__name__)

# Telegram returns at most this many updates per getUpdates call.
MAX_BATCH = 100
# Journal batches between WAL checkpoints (each in a worker thread, off the event loop).
_CHECKPOINT_EVERY = 200
# getMe attempts at start before an unreachable API is reported as a configuration error.
_START_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class PollingOptions:
    """Options of the polling source.

    - ``timeout``: long-poll seconds per ``getUpdates``, default 30.
    - ``limit``: most updates per call, 1–100, default 100 (less when the scheduler is full).
    - ``allowed_updates``: kinds to receive; ``None`` (default) keeps Telegram's setting.
    - ``drop_pending_updates``: skip the backlog on start, default False.
    - ``backoff_base`` / ``backoff_cap``: seconds for network and 5xx retries, default 0.5 / 30.
    - ``journal``: path of a durable intake journal (SQLite), default None (strict offsets).
      With a journal, updates are confirmed to Telegram once journaled rather than once
      finished, which lifts the 100-update window; unfinished ones are replayed on restart.
    - ``journal_sync``: ``"normal"`` (default; survives a process crash) or ``"full"``.
    """

    timeout: int = 30
    limit: int = MAX_BATCH
    allowed_updates: tuple[str, ...] | None = None
    drop_pending_updates: bool = False
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    journal: str | None = None
    journal_sync: str = "normal"

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_BATCH:
            raise ConfigError(f"polling limit must be between 1 and 100, got {self.limit}")
        if self.timeout < 0:
            raise ConfigError(f"polling timeout must be 0 or more seconds, got {self.timeout}")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            raise ConfigError("backoff_base must be > 0 and backoff_cap >= backoff_base")
        if isinstance(self.allowed_updates, str):
            raise ConfigError("allowed_updates is a list of update kinds, not one string")


def conflict_message(exc: Conflict) -> str:
    """Say which 409 conflict happened and what to do about it."""
    if "webhook" in exc.description.lower():
        return (
            "Telegram refuses getUpdates because a webhook is set for this bot. Delete it "
            "(tgrunner delete-webhook, or deleteWebhook) to poll, or run in webhook mode."
        )
    return (
        "Another instance is polling with this bot token (409: terminated by other getUpdates "
        "request). Stop the other instance; only one poller per token can run."
    )


class PollingSource:
    """Fetch batches of new updates; the watermark decides the offset.

    ``next_batch(capacity)`` returns the updates not seen before, in update_id order, having
    registered them with the watermark. ``capacity`` is how many more the scheduler can take.
    ``on_advance()`` must be called when the watermark's offset moves, so a source that waits
    for room wakes up.
    """

    def __init__(self, bot: Bot, watermark: Watermark, options: PollingOptions) -> None:
        self.bot = bot
        self.watermark = watermark
        self.options = options
        self._advanced = asyncio.Event()
        self._failures = 0
        self._stale = 0  # consecutive fetches that brought nothing new
        self.journal: Journal | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        if options.journal:
            self.journal = Journal(options.journal, bot_id=bot.id, sync=options.journal_sync)
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    def on_advance(self) -> None:
        self._advanced.set()

    async def start(self) -> None:
        """Check the token with ``getMe`` (3 tries on network errors) before the first fetch."""
        for attempt in range(_START_ATTEMPTS):
            try:
                await self.bot.get_me()
                break
            except (NetworkError, ServerError) as exc:
                if attempt + 1 == _START_ATTEMPTS:
                    raise ConfigError(
                        f"Cannot reach the Bot API at {self.bot.api_url} ({exc}). Check "
                        "--api-url (or TGRUNNER_API_URL) and the network."
                    ) from exc
                log.warning("getMe failed (%s); retrying", exc)
                await self.sleep(self.options.backoff_base * 2**attempt)
            except Unauthorized as exc:
                raise ConfigError(
                    "Telegram rejected the bot token (401 Unauthorized). Check the token you "
                    "passed (--token, TGRUNNER_TOKEN or BOT_TOKEN) against @BotFather."
                ) from exc
        if self.options.drop_pending_updates:
            await self.bot.delete_webhook(drop_pending_updates=True)

    async def _wait_for_room(self) -> None:
        # Telegram answers at once while updates are in flight past the offset, so fetching
        # again right away would spin on redeliveries. With the window full, wait for the
        # watermark to move. After a fetch that brought nothing new, wait for it to move or
        # for a short, growing pause, so a slow handler at the head does not hide new updates.
        while self.watermark.in_flight >= MAX_BATCH:
            self._advanced.clear()
            await self._advanced.wait()
        if self._stale and self.watermark.in_flight:
            self._advanced.clear()
            pause = min(0.5, 0.005 * 2 ** min(self._stale, 7))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races with the event being set, and the runner's stop would be lost.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._advanced.wait()

    def _checkpoint_done(self, fut: asyncio.Future[None]) -> None:
        self._checkpoint = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("journal checkpoint failed (%s); will retry", fut.exception())

    def replay(self) -> list[dict[str, Any]]:
        """Updates journaled by an earlier run and not finished: handle them first."""
        if self.journal is None:
            return []
        pending = self.journal.unfinished()
        for update in pending:
            self.watermark.received(update["update_id"])
        if pending:
            log.info("replaying %d unfinished update(s) from the journal", len(pending))
        return pending

    async def next_batch(self, capacity: int) -> list[dict[str, Any]]:
        """Fetch once (retrying errors as Telegram means them) and return the new updates."""
        wm = self.watermark
        journal = self.journal
        if journal is None:
            await self._wait_for_room()
            limit = min(self.options.limit, wm.in_flight + max(capacity, 1), MAX_BATCH)
            # Long-poll only when nothing is in flight: else Telegram answers at once anyway.
            timeout = 0 if wm.in_flight else self.options.timeout
            offset = wm.offset if wm.highest >= 0 else None
        else:
            journal.flush()
            if journal.writes_since_checkpoint >= _CHECKPOINT_EVERY and self._checkpoint is None:
                self._checkpoint = asyncio.get_running_loop().run_in_executor(
                    None, journal.checkpoint
                )
                self._checkpoint.add_done_callback(self._checkpoint_done)
            limit = min(self.options.limit, max(capacity, 1))
            timeout = self.options.timeout
            offset = journal.highest + 1 if journal.highest >= 0 else None
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset,
                    limit=limit,
                    timeout=timeout,
                    allowed_updates=self.options.allowed_updates,
                )
            except RetryAfter as exc:
                delay = float(exc.retry_after or 1)
                log.warning("getUpdates hit flood control; waiting %.1f s as Telegram asks", delay)
                await self.sleep(delay)
                continue
            except (NetworkError, ServerError) as exc:
                self._failures += 1
                ceiling = min(
                    self.options.backoff_cap, self.options.backoff_base * 2 ** (self._failures - 1)
                )
                delay = random.uniform(ceiling / 2, ceiling)
                log.warning("getUpdates failed (%s); retrying in %.2f s", exc, delay)
                await self.sleep(delay)
                continue
            except Unauthorized as exc:
                raise ConfigError(
                    "Telegram rejected the bot token (401 Unauthorized) while polling. "
                    "The token was revoked or is wrong; get a new one from @BotFather."
                ) from exc
            except Conflict as exc:
                raise ConfigError(conflict_message(exc)) from exc
            except TelegramError as exc:
                raise ConfigError(
                    f"getUpdates was refused: {exc.description}. Check allowed_updates and "
                    "the polling options."
                ) from exc
            break
        self._failures = 0
        if journal is not None:
            # Durable before the next call's offset lets Telegram forget them.
            updates = journal.put(updates)
        fresh = [u for u in updates if wm.received(u["update_id"])]
        self._stale = 0 if fresh else self._stale + 1
        return fresh

    async def confirm(self) -> None:
        """Send the watermark's offset, so Telegram forgets every finished update.

        Called once on a clean stop. Errors are logged, not raised: unconfirmed updates are
        only redelivered, never lost.
        """
        wm = self.watermark
        offset = wm.offset
        if self.journal is not None:
            if self._checkpoint is not None:
                await asyncio.wait([self._checkpoint])
            self.journal.close()
            offset = self.journal.highest + 1
        if wm.highest < 0 and (self.journal is None or self.journal.highest < 0):
            return
        try:
            await self.bot.get_updates(offset=offset, limit=1, timeout=0)
        except Exception as exc:  # the stop must complete; redelivery is the safe outcome
            log.warning(
                "could not confirm offset %d on stop (%s); updates will be redelivered",
                wm.offset,
                exc,
            )
