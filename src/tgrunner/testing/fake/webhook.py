"""Webhook delivery: FakeTelegram POSTs each update to the bot's webhook, as Telegram does.

- Each update is one JSON POST, with ``X-Telegram-Bot-Api-Secret-Token`` when a secret is set.
- At most ``max_connections`` requests are in flight at once.
- Updates that share a chat (else a user; see :func:`~tgrunner.testing.fake.world.chat_key`)
  go one at a time: the next waits until the previous one was accepted. Updates of other chats
  overtake a chat that is retrying.
- A non-2xx answer, a timeout or a broken connection is retried with capped exponential backoff
  (:class:`WebhookRetry`, fast by default so tests stay fast); ``getWebhookInfo`` then shows
  ``last_error_date`` and ``last_error_message`` such as
  ``"Wrong response from the webhook: 500 Internal Server Error"``. A ``Retry-After`` header is
  honoured up to the backoff cap.
- A 2xx answer may carry a method call (``{"method": "sendMessage", ...}``); it is executed,
  except ``setWebhook``, ``deleteWebhook``, ``logOut``, ``close`` and ``get*`` methods, which the
  reference server ignores there too.
- :class:`WebhookTimings`, when given, records how long each POST took to be answered (for
  benchmarks: the time a bot takes to give its 200).
"""

from __future__ import annotations

import asyncio
import http
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from tgrunner.client.transports.fast import HTTPClient, TransportError, TransportTimeout
from tgrunner.testing.fake.world import BotState, State, chat_key

__all__ = ["WebhookDelivery", "WebhookRetry", "WebhookTimings"]

log = logging.getLogger(__name__)

Execute = Callable[[BotState, str, dict[str, Any]], Any]
"""Runs a method carried in a webhook answer: ``(bot, method name, parameters)``."""

_IGNORED_REPLY_METHODS = frozenset({"setwebhook", "deletewebhook", "logout", "close"})


@dataclass(frozen=True, slots=True)
class WebhookRetry:
    """How webhook delivery retries. Telegram backs off up to minutes; tests want less.

    - ``base`` (default 0.05 s): the delay before the first retry; it doubles each time.
    - ``cap`` (default 1.0 s): the longest delay between two attempts.
    - ``timeout`` (default 10.0 s): how long one POST may take before it counts as failed.
    - ``max_attempts`` (default None: never give up): attempts before an update is dropped.
    """

    base: float = 0.05
    cap: float = 1.0
    timeout: float = 10.0
    max_attempts: int | None = None

    @classmethod
    def telegram(cls) -> WebhookRetry:
        """Telegram's own pace: 2, 4, 8 … s between attempts, at most 60 s, a POST failing
        after 60 s; never giving up."""
        return cls(base=2.0, cap=60.0, timeout=60.0)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the next try after ``attempts`` failed ones: ``base`` doubled per
        failure, at most ``cap``; a ``Retry-After`` of the answer is honoured up to ``cap``."""
        delay = min(self.cap, self.base * 2 ** (attempts - 1))
        if retry_after is not None:
            delay = min(self.cap, max(delay, retry_after))
        return delay


@dataclass(slots=True)
class WebhookTimings:
    """A record of webhook POSTs, filled by delivery when given to ``FakeTelegram``.

    - ``ok``: for every POST answered 2xx, the seconds from sending it to its answer (a
      monotonic clock; empty at first), in the order the answers came.
    - ``failed``: POSTs answered non-2xx or that timed out or broke (default 0).
    """

    ok: list[float] = field(default_factory=list)
    failed: int = 0


class WebhookDelivery:
    """Delivers one bot's queued updates to its webhook until :meth:`stop`.

    ``execute`` runs methods carried in answers; ``retry`` (default :class:`WebhookRetry()`)
    sets the backoff; ``timings`` (default None: nothing recorded) receives each POST's
    duration.
    """

    def __init__(
        self,
        state: State,
        bot: BotState,
        execute: Execute,
        retry: WebhookRetry | None = None,
        timings: WebhookTimings | None = None,
    ) -> None:
        self.state = state
        self.timings = timings
        self.bot = bot
        self.execute = execute
        self.retry = retry or WebhookRetry()
        self._lanes: dict[Any, deque[dict[str, Any]]] = {}
        self._ready: deque[Any] = deque()
        self._attempts: dict[int, int] = {}
        self._count = 0
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._client: HTTPClient | None = None
        self._client_key: tuple[str, int] = ("", 0)
        self._closing: list[HTTPClient] = []
        self._running = False

    @property
    def backlog(self) -> int:
        """Updates taken from the queue and not yet delivered."""
        return self._count

    @property
    def inflight(self) -> int:
        """POSTs under way right now."""
        return self._inflight

    def start(self) -> None:
        """Begin delivering (or pick up a changed webhook); safe to call again."""
        self._running = True
        self.bot.on_update = self.kick
        self.bot.webhook_backlog = lambda: self._count
        self.kick()

    def stop(self) -> None:
        """Stop at once; undelivered updates go back to the queue in ``update_id`` order."""
        self._running = False
        if self.bot.on_update == self.kick:
            self.bot.on_update = None
            self.bot.webhook_backlog = None
        for task in self._tasks:
            task.cancel()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        back = [u for lane in self._lanes.values() for u in lane]
        back.extend(self.bot.pending)
        back.sort(key=lambda u: u["update_id"])
        self.bot.pending.clear()
        self.bot.pending.extend(back)
        self._lanes.clear()
        self._ready.clear()
        self._count = 0
        self._inflight = 0
        if self._client is not None:
            self._closing.append(self._client)
            self._client = None

    async def aclose(self) -> None:
        """Stop, wait for cancelled deliveries to end, and close HTTP connections."""
        self.stop()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        clients, self._closing = self._closing, []
        for client in clients:
            await client.close()

    # -- scheduling ------------------------------------------------------------------------

    def kick(self) -> None:
        """Move newly queued updates into per-chat lanes and start what may start."""
        if not self._running:
            return
        pending = self.bot.pending
        lanes = self._lanes
        while pending:
            update = pending.popleft()
            key: Hashable = chat_key(update)
            if key is None:
                key = ("update", update["update_id"])
            lane = lanes.get(key)
            if lane is None:
                lanes[key] = deque((update,))
                self._ready.append(key)
            else:
                lane.append(update)
            self._count += 1
        self._dispatch()

    def _dispatch(self) -> None:
        hook = self.bot.webhook
        if hook is None or not self._running:
            return
        while self._ready and self._inflight < hook.max_connections:
            key = self._ready.popleft()
            if key not in self._lanes:
                continue
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._deliver(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _http(self, url: str) -> tuple[HTTPClient, str]:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        hook = self.bot.webhook
        pool = hook.max_connections if hook is not None else 40
        if self._client is None or (base, pool) != self._client_key:
            # A new URL or a new max_connections (setWebhook again): a new pool.
            if self._client is not None:
                self._closing.append(self._client)
            self._client = HTTPClient(base, pool_size=pool, default_timeout=self.retry.timeout)
            self._client_key = (base, pool)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return self._client, path

    # -- one delivery ----------------------------------------------------------------------

    async def _deliver(self, key: Any) -> None:
        update = self._lanes[key][0]
        hook = self.bot.webhook
        error: str | None = None
        retry_after: float | None = None
        try:
            if hook is None:
                error = "Webhook is not set"
                return
            client, path = self._http(hook.url)
            headers = {}
            if hook.secret_token:
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
            sent = time.monotonic()
            try:
                response = await client.request(
                    "POST",
                    path,
                    body=orjson.dumps(update),
                    content_type="application/json",
                    headers=headers,
                    timeout=self.retry.timeout,
                )
            except TransportTimeout:
                error = "Read timeout expired"
            except TransportError as exc:
                error = _connection_error(exc)
            else:
                if 200 <= response.status <= 299:
                    if self.timings is not None:
                        self.timings.ok.append(time.monotonic() - sent)
                    self._reply_method(response.body)
                else:
                    status = response.status
                    error = f"Wrong response from the webhook: {status} {_reason(status)}"
                    retry_after = _retry_after(response.headers)
        finally:
            if error is not None and self.timings is not None:
                self.timings.failed += 1
            if self._running:
                self._inflight -= 1
                if error is None:
                    self._done(key, update)
                else:
                    self._failed(key, update, error, retry_after)
                self._dispatch()

    def _done(self, key: Any, update: dict[str, Any]) -> None:
        lane = self._lanes[key]
        lane.popleft()
        self._count -= 1
        self._attempts.pop(update["update_id"], None)
        if lane:
            self._ready.append(key)
        else:
            del self._lanes[key]
        self.state.changed()

    def _failed(
        self, key: Any, update: dict[str, Any], error: str, retry_after: float | None
    ) -> None:
        bot = self.bot
        bot.last_error_date = self.state.now()
        bot.last_error_message = error
        uid = update["update_id"]
        attempts = self._attempts.get(uid, 0) + 1
        self._attempts[uid] = attempts
        log.debug("webhook delivery of update %s failed (%s), attempt %d", uid, error, attempts)
        retry = self.retry
        if retry.max_attempts is not None and attempts >= retry.max_attempts:
            log.warning("dropping update %s after %d failed webhook deliveries", uid, attempts)
            self._done(key, update)
            return
        delay = retry.delay(attempts, retry_after)
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def again() -> None:
            self._timers.discard(timer)
            if self._running and key in self._lanes:
                self._ready.appendleft(key)
                self._dispatch()

        timer = loop.call_later(delay, again)
        self._timers.add(timer)
        self.state.changed()

    def _reply_method(self, body: bytes) -> None:
        if not body:
            return
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        method = payload.get("method")
        if not isinstance(method, str) or not method:
            return
        low = method.lower()
        if low in _IGNORED_REPLY_METHODS or low.startswith("get"):
            return
        params = {k: v for k, v in payload.items() if k != "method"}
        try:
            self.execute(self.bot, method, params)
        except Exception:  # a bad reply method must not stop delivery
            log.exception("executing %s from a webhook answer failed", method)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _retry_after(headers: Any) -> float | None:
    value = None
    if isinstance(headers, dict):
        value = headers.get("retry-after") or headers.get("Retry-After")
    else:
        for name, item in headers or ():
            if str(name).lower() == "retry-after":
                value = item
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _connection_error(exc: BaseException) -> str:
    text = str(exc).lower()
    if "refused" in text or isinstance(exc.__cause__, ConnectionRefusedError):
        return "Connection refused"
    if "reset" in text or isinstance(exc.__cause__, ConnectionResetError):
        return "Connection reset by peer"
    return "Webhook connection closed"
