"""The webhook source: an aiohttp server that answers Telegram only once an update is durable.

Each POST to the webhook's path is checked, in this order, and refused without reaching the
runtime: a client address not allowed (403), another path (404), another method (405), a
missing or wrong secret token (401, compared in constant time), a content type other than
``application/json`` (415), a body over ``max_body`` (413), a body not received within
``body_timeout`` (408), and a body that is not a JSON object with an integer ``update_id``
(400). Then, while the runtime's backlog is above ``max_backlog``, 429 with ``Retry-After``,
which Telegram honours.

An accepted update is queued and its request waits: :meth:`WebhookSource.next_batch` hands
queued updates to the runtime, which journals them (one transaction per batch) and calls
:meth:`WebhookSource.confirm`; only then does each of their requests get its 200. A crash
before that leaves the requests unanswered, and Telegram sends the updates again.

A request whose ``update_id`` is already waiting (Telegram resends when it timed out) joins
the first: both get the same answer, and the update is handed on once. An id confirmed in the
last ten minutes is answered 200 at once. An update of a kind this version does not know is
accepted like any other.

On :meth:`WebhookSource.close` the listener stops, and every request still waiting gets 503:
those updates were never acknowledged, so Telegram delivers them again later.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from tgrunner.answers import ANSWERS
from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError, NetworkError, TelegramError, Unauthorized
from tgrunner.sources.webhook_guard import (
    Connections,
    GuardedHandler,
    Warnings,
    bind_error,
    client_address,
    is_allowed,
    parse_update,
)
from tgrunner.sources.webhook_options import TELEGRAM_IPS, WebhookOptions

__all__ = ["TELEGRAM_IPS", "WebhookOptions", "WebhookSource"]

log = logging.getLogger(__name__)

Update = dict[str, Any]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# An idle kept-alive connection is closed after this long (Telegram reconnects at will).
KEEPALIVE = 75.0
# After a refusal sent before the body was read, aiohttp reads and drops the rest of the body
# for at most this long before it closes: closing with unread data makes the kernel send a
# reset, which can destroy the answer before the client reads it.
LINGER = 2.0
# Confirmed ids remembered, so a resend that crossed our 200 is answered at once. Telegram
# restarts ids only after a quiet week, far beyond this memory.
RECENT_TTL = 600.0
RECENT_MAX = 10_000


@dataclass(slots=True)
class _Pending:
    """An update received and not yet answered, with the answer its requests wait for."""

    update: Update
    answer: asyncio.Future[int]
    requests: int = field(default=1)
    body: bytes | None = None  # direct mode: a method the handler left as the answer


class WebhookSource:
    """Receive updates on a webhook; answer 200 once the runtime says they are durable.

    ``backlog`` (default: always 0) tells how many updates the runtime holds unfinished;
    above ``options.max_backlog`` new updates are refused with 429. ``reach`` (default None:
    nothing) is awaited first at start: the runtime checks the token there and waits a while
    for an unreachable API (:func:`~tgrunner.sources.polling.reach_api`). ``responses``
    counts the answers sent, by status code; ``on_response(status)`` (default None) is called
    for each.
    """

    name = "webhook"
    """The ``source`` label of its updates' metrics."""
    on_response: Callable[[int], None] | None = None
    ordered = False
    """Update ids of different chats arrive in any order: the runtime dedups them by id."""

    def __init__(
        self,
        bot: Bot,
        options: WebhookOptions,
        *,
        backlog: Callable[[], int] = lambda: 0,
        reach: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bot = bot
        self._reach = reach
        self.options = options
        self.backlog = backlog
        self.responses: dict[int, int] = {}
        self._allowed, self._trusted = options.networks()
        self._path = options.path
        self._secret = options.secret.encode() if options.secret is not None else None
        self._queue: deque[_Pending] = deque()  # received, not yet returned by next_batch
        self._returned: list[_Pending] = []  # returned, not yet confirmed
        self._direct = options.mode == "direct"
        self._handling: dict[int, _Pending] = {}  # direct mode: confirmed, not yet finished
        self._pending: dict[int, _Pending] = {}  # both of the above, by update_id
        self._recent: dict[int, float] = {}  # confirmed ids -> when, oldest first
        self._arrived = asyncio.Event()
        self._connections = Connections(options.max_open, options.header_timeout)
        self._warnings = Warnings()
        self._server: web.Server | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._port = 0
        self._closing = False
        self._closed: asyncio.Event | None = None

    # -- what the runtime and tests see ----------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (the bound one when ``listen`` asked for 0); 0
        before :meth:`start`."""
        return self._port

    @property
    def webhook_url(self) -> str:
        """The URL given to setWebhook: ``options.url``, with a port of 0 replaced by
        :attr:`port`."""
        parts = urlsplit(self.options.url)
        if parts.port != 0 or not self._port:
            return self.options.url
        host = parts.netloc.rpartition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{host}:{self._port}"))

    @property
    def description(self) -> str:
        """What the start-up line says of this source: ``webhook <URL> on <host:port>``."""
        return f"webhook {self.webhook_url} on {self.options.host}:{self._port}"

    @property
    def pending(self) -> int:
        """Updates received and not yet answered (queued, or returned and unconfirmed)."""
        return len(self._pending)

    @property
    def open_connections(self) -> int:
        """Connections open right now."""
        return self._connections.open

    # -- lifecycle -------------------------------------------------------------------------

    async def check(self) -> None:
        """Await ``reach`` (the token, and the API reachable), once; :meth:`start` does it
        first unless it was done. The runtime calls it before starting its workers."""
        reach, self._reach = self._reach, None
        if reach is not None:
            await reach()

    async def start(self) -> None:
        """Bind the server, then call setWebhook (unless ``set_webhook`` is False).

        Raises ConfigError when the address cannot be bound, the TLS files cannot be loaded,
        or Telegram refuses the webhook.
        """
        if self._listener is not None:
            return
        opts = self.options
        context = self._ssl_context()
        await self.check()
        loop = asyncio.get_running_loop()
        server = web.Server(self._handle, loop=loop)
        kwargs: dict[str, Any] = {
            "loop": loop,
            "keepalive_timeout": KEEPALIVE,
            "access_log": None,
            "auto_decompress": False,  # a compressed body is refused (415): no zip bombs
            "lingering_time": LINGER,
        }
        conns = self._connections
        try:
            self._listener = await loop.create_server(
                lambda: GuardedHandler(server, conns, **kwargs),
                opts.host,
                opts.port,
                ssl=context,
                reuse_address=True,
            )
        except OSError as exc:
            raise ConfigError(bind_error(opts.listen, exc)) from exc
        self._server = server
        self._port = self._listener.sockets[0].getsockname()[1]
        log.debug("webhook server listening on %s:%d", opts.host, self._port)
        if opts.secret is None and opts.allow_ips is None:
            log.warning(
                "the webhook has no secret and no allow_ips: anyone who learns its URL can "
                "post updates; set a secret token"
            )
        if opts.set_webhook:
            try:
                await self._set_webhook()
            except BaseException:
                await self._stop_serving()
                raise

    def _ssl_context(self) -> ssl.SSLContext | None:
        opts = self.options
        if opts.tls_cert is None or opts.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(str(opts.tls_cert), str(opts.tls_key))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"cannot load the webhook's TLS certificate {str(opts.tls_cert)!r} with key "
                f"{str(opts.tls_key)!r} ({exc}); pass a PEM certificate chain and its "
                "matching unencrypted private key"
            ) from exc
        return context

    async def _set_webhook(self) -> None:
        opts = self.options
        url = self.webhook_url
        try:
            await self.bot.call(
                "setWebhook",
                url=url,
                secret_token=opts.secret,
                allowed_updates=(
                    list(opts.allowed_updates) if opts.allowed_updates is not None else None
                ),
                max_connections=opts.max_connections,
            )
        except Unauthorized as exc:
            raise ConfigError(
                "Telegram rejected the bot token (401 Unauthorized) on setWebhook. Check the "
                "token you passed (--token, TGRUNNER_TOKEN or BOT_TOKEN) against @BotFather."
            ) from exc
        except TelegramError as exc:
            raise ConfigError(
                f"Telegram refused setWebhook for {url}: {exc.description}. Pass a public "
                "https URL on port 443, 80, 88 or 8443."
            ) from exc
        except NetworkError as exc:
            raise ConfigError(
                f"cannot reach the Bot API at {self.bot.api_url} to set the webhook ({exc}); "
                "check --api-url and the network."
            ) from exc
        log.info("webhook set to %s", url)

    async def close(self) -> None:
        """Stop listening; answer every waiting request 503 (Telegram sends those updates
        again later); then, with ``delete_on_stop``, call deleteWebhook. Safe to call twice."""
        if self._closed is not None:
            await self._closed.wait()
            return
        self._closed = asyncio.Event()
        self._closing = True
        try:
            unanswered = [*self._returned, *self._handling.values(), *self._queue]
            self._handling.clear()
            for entry in unanswered:
                if not entry.answer.done():
                    entry.answer.set_result(503)
            self._returned.clear()
            self._queue.clear()
            self._pending.clear()
            self._arrived.set()  # a waiting next_batch sees the close
            if unanswered:
                log.info(
                    "webhook closing: %d unconfirmed update(s) answered 503; Telegram sends "
                    "them again",
                    len(unanswered),
                )
            await self._stop_serving()
            if self.options.delete_on_stop and self._port:
                try:
                    await self.bot.call("deleteWebhook")
                    log.info("webhook deleted")
                except Exception as exc:  # the stop must complete; the webhook just stays
                    log.warning("could not delete the webhook on stop (%s)", exc)
        finally:
            self._closed.set()

    async def _stop_serving(self) -> None:
        listener, self._listener = self._listener, None
        server, self._server = self._server, None
        if listener is not None:
            listener.close()
        if server is not None:
            server.pre_shutdown()
            # Handlers have their answers by now; give them a moment to write them.
            await server.shutdown(timeout=1.0)
        if listener is not None:
            await listener.wait_closed()

    # -- the runtime's side ----------------------------------------------------------------

    async def next_batch(self, capacity: int) -> list[Update]:
        """Wait for updates not returned before; return up to ``capacity`` (at least 1) of
        them in arrival order. After :meth:`close`, waits until cancelled."""
        while not self._queue:
            if self._closing:
                await asyncio.get_running_loop().create_future()  # the runner cancels us
            self._arrived.clear()
            await self._arrived.wait()
        queue = self._queue
        take = min(max(capacity, 1), len(queue))
        batch = [queue.popleft() for _ in range(take)]
        self._returned.extend(batch)
        return [entry.update for entry in batch]

    def confirm(self, offset: int) -> None:
        """Every update :meth:`next_batch` returned so far is durable: answer their requests
        200.

        ``offset`` is ignored: webhook updates of different chats arrive out of id order, so
        "every id below the offset" says nothing about which requests may be answered; what
        was returned is.
        """
        if not self._returned:
            return
        if self._direct:  # answered by finished(), once handled
            for entry in self._returned:
                self._handling[entry.update["update_id"]] = entry
            self._returned.clear()
            return
        now = time.monotonic()
        for entry in self._returned:
            self._answered(entry, now)
        self._returned.clear()
        self._forget(now)

    def finished(self, update_id: int) -> None:
        """Direct mode: the update has been handled; answer its requests 200. Does nothing in
        journal mode (answered at :meth:`confirm`) or for an id not waiting here."""
        entry = self._handling.pop(update_id, None)
        if entry is None:
            return
        entry.body = ANSWERS.take(update_id)
        now = time.monotonic()
        self._answered(entry, now)
        self._forget(now)

    def _answered(self, entry: _Pending, now: float) -> None:
        """Answer ``entry``'s requests 200 and remember its id (newest last) for resends."""
        uid = entry.update["update_id"]
        self._pending.pop(uid, None)
        self._recent.pop(uid, None)
        self._recent[uid] = now
        if not entry.answer.done():
            entry.answer.set_result(200)

    def _forget(self, now: float) -> None:
        recent = self._recent
        while recent:
            uid, since = next(iter(recent.items()))
            if len(recent) <= RECENT_MAX and now - since < RECENT_TTL:
                break
            del recent[uid]

    # -- one request -----------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        conn = request.protocol
        guarded = conn if isinstance(conn, GuardedHandler) else None
        if guarded is not None:
            guarded.request_started()
        try:
            response = await self._answer(request)
        finally:
            if guarded is not None:
                guarded.request_ended()
        status = response.status
        self.responses[status] = self.responses.get(status, 0) + 1
        if self.on_response is not None:
            self.on_response(status)
        return response

    def _refuse(
        self,
        status: int,
        why: str,
        client: object,
        *,
        headers: dict[str, str] | None = None,
        close: bool = True,
    ) -> web.Response:
        self._warnings.refused(status, why, client)
        response = web.Response(status=status, text=why, headers=headers)
        if close:
            response.force_close()
        return response

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        opts = self.options
        client = client_address(
            request.remote, request.headers.getall("X-Forwarded-For", ()), self._trusted
        )
        if self._closing:
            return web.Response(status=503, text="the bot is stopping")
        if not is_allowed(client, self._allowed):
            return self._refuse(403, "the client address is not allowed", client)
        if request.rel_url.raw_path != self._path:
            return self._refuse(404, "not the webhook's path", client)
        if request.method != "POST":
            return self._refuse(405, "only POST", client, headers={"Allow": "POST"})
        if self._secret is not None:
            got = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(got, self._secret):
                return self._refuse(401, "missing or wrong secret token", client)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if request.content_type != "application/json" or encoding != "identity":
            return self._refuse(415, "the body must be application/json", client)
        length = request.content_length
        if length is not None and length > opts.max_body:
            return self._refuse(413, "the body is too large", client)
        try:
            async with asyncio.timeout(opts.body_timeout):
                body = await self._read_body(request)
        except TimeoutError:
            return self._refuse(408, "the body did not arrive in time", client)
        except (web.RequestPayloadError, ConnectionError):
            return self._refuse(400, "the body is broken", client)
        if body is None:
            return self._refuse(413, "the body is too large", client)
        update = parse_update(body)
        if update is None:
            return self._refuse(400, "not a JSON update", client, close=False)
        return await self._accept(update, client)

    async def _read_body(self, request: web.BaseRequest) -> bytes | None:
        limit = self.options.max_body
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.readany():
            size += len(chunk)
            if size > limit:
                return None  # a chunked body past the limit: stop reading it
            chunks.append(chunk)
        return b"".join(chunks)

    async def _accept(self, update: Update, client: object) -> web.StreamResponse:
        uid = update["update_id"]
        entry = self._pending.get(uid)
        if entry is not None:
            entry.requests += 1  # Telegram resent it while the first waits: join that one
        elif uid in self._recent and time.monotonic() - self._recent[uid] < RECENT_TTL:
            return web.Response(status=200)  # already durable; our 200 crossed the resend
        else:
            backlog = self.backlog()
            if backlog > self.options.max_backlog:
                retry = str(self.options.retry_after)
                return self._refuse(
                    429,
                    f"busy: {backlog} updates waiting",
                    client,
                    headers={"Retry-After": retry},
                    close=False,
                )
            entry = _Pending(update, asyncio.get_running_loop().create_future())
            self._pending[uid] = entry
            self._queue.append(entry)
            self._arrived.set()
        # shield: a cancelled request (handler cancellation) must not cancel the shared answer
        status = await asyncio.shield(entry.answer)
        if status == 503:
            return web.Response(status=503, text="the bot is stopping")
        if status == 200 and entry.body is not None:
            return web.Response(status=200, body=entry.body, content_type="application/json")
        return web.Response(status=status)
