"""A small, fast HTTP/1.1 client with a keep-alive pool, on an asyncio ``Protocol`` and httptools.

Why hand-written: aiohttp costs about 100-200 µs of CPU per request on each side, and the bot
runtime aims at 50 µs of CPU per echoed update, its outgoing Bot API call included. httptools
(llhttp, the parser uvicorn uses) parses the responses; this module only frames requests and
keeps a pool of connections to one server. It runs on the default asyncio loop and on uvloop.

How the pool behaves:

- Up to ``pool_size`` connections; the most recently used idle one is reused first (LIFO, so
  the rest can time out on the server), and requests wait in FIFO order when all are busy.
- An idle connection expires after ``idle_timeout`` (15 s): servers and NATs drop quiet
  connections, often without a word, and a request written into such a one would wait for
  its whole timeout. Before a pooled connection is written into, it is checked to be alive
  (no EOF seen, its transport not closing) and not expired: a flag and a clock read, no
  syscall. A connection that fails the check is dropped and the request goes on another.
- A request is never resent once it was written: the server may have read it. When a reused
  connection breaks before answering, the request fails with ``sent=True, answered=False``;
  whether that method may be sent again is the caller's decision (the Bot's retry policy).
- A timeout, a cancellation or any error discards the connection: a connection with a response
  still due is never reused.
- Responses are capped: ``max_body_size`` (64 MiB) for the body and ``max_header_size``
  (64 KiB) for the head. A larger one fails and its connection is dropped.

Every failure below HTTP raises :class:`TransportError` (:class:`TransportTimeout` for
timeouts), whose ``__cause__`` is the ``OSError`` when there was one; both say how far the
exchange got. HTTP error statuses are not exceptions: they come back as a
:class:`ClientResponse`.

``https://`` base URLs are supported through an ``ssl.SSLContext`` (the default one verifies
certificates against the system's CA store). ``HEAD`` and ``CONNECT`` are not supported.
A client belongs to one event loop at a time.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections import deque
from collections.abc import Mapping
from time import monotonic
from types import EllipsisType
from urllib.parse import quote

from tgrunner.client.transports._connection import ClientResponse, Connection
from tgrunner.client.transports.checks import check_base_url, check_limits
from tgrunner.client.transports.errors import TransportError, TransportTimeout

__all__ = ["ClientResponse", "HTTPClient", "TransportError", "TransportTimeout"]

# close() waits this long for connections to finish closing.
_CLOSE_WAIT = 1.0
_PREFIXES_MAX = 1024
_CONTENT_TYPES_MAX = 64
# Methods whose requests carry no Content-Length when their body is empty.
_NO_BODY = frozenset({"GET", "DELETE", "OPTIONS", "TRACE"})
DEFAULT_IDLE_TIMEOUT = 15.0
DEFAULT_MAX_BODY_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_HEADER_SIZE = 64 * 1024
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _check_text(text: str, what: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"the request's {what} contains a line break: {text!r}")


class HTTPClient:
    """An HTTP/1.1 client for one server, with a keep-alive connection pool.

    - ``base_url``: ``http://host:port`` or ``https://host[:port]``, optionally with a path
      prefix that every request path is appended to.
    - ``pool_size``: connections at most, default 100; further requests wait their turn.
    - ``connect_timeout``: seconds to open a connection, default 10 (None: no limit).
    - ``default_timeout``: seconds for a whole request (waiting for a connection, connecting,
      sending, reading the response) when :meth:`request` is given none, default 60 (None: no
      limit).
    - ``ssl_context``: for ``https://`` only; default ``ssl.create_default_context()``.
    - ``idle_timeout``: seconds an idle connection is kept, default 15 (None: no limit).
    - ``max_body_size``: bytes of a response body at most, default 64 MiB (None: no limit;
      Telegram's own downloads are at most 20 MB, a local Bot API server's up to 2 GB).
    - ``max_header_size``: bytes of a response's headers at most, default 64 KiB.

    Call ``await close()`` when done; it is safe to call twice.
    """

    def __init__(
        self,
        base_url: str,
        *,
        pool_size: int = 100,
        connect_timeout: float | None = 10.0,
        default_timeout: float | None = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    ) -> None:
        parts = check_base_url(base_url)
        scheme = parts.scheme.lower()
        if ssl_context is not None and scheme != "https":
            raise ValueError("ssl_context is for https:// base URLs only")
        check_limits(pool_size, idle_timeout, max_body_size)
        if max_header_size < 1:
            raise ValueError("max_header_size must be at least 1 byte")
        default_port = 443 if scheme == "https" else 80
        self._host = (parts.hostname or "").encode("idna").decode("ascii")
        self._port = parts.port or default_port
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._netloc = f"{host}:{self._port}"
        authority = host if self._port == default_port else self._netloc
        self._host_header = f"Host: {authority}\r\n".encode("ascii")
        self._base_path = parts.path.rstrip("/")
        self._https = scheme == "https"
        self._ssl = ssl_context
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._default_timeout = default_timeout
        self._idle_timeout = float("inf") if idle_timeout is None else idle_timeout
        self._max_body = sys.maxsize if max_body_size is None else max_body_size
        self._max_head = max_header_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[Connection] = []
        self._all: set[Connection] = set()
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        # Slots held by requests: connections in use or being opened. Idle ones are extra.
        self._busy = 0
        self._closed = False
        self._all_gone: asyncio.Future[None] | None = None
        self._prefixes: dict[tuple[str, str], tuple[bytes, bool]] = {}
        self._content_types: dict[str, bytes] = {}

    @property
    def connections(self) -> int:
        """How many connections are open (idle or in use)."""
        return len(self._all)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | EllipsisType | None = ...,
    ) -> ClientResponse:
        """Send one request and read its response.

        ``path`` (with any query string) is appended to the base URL's path. ``content_type``
        and ``headers`` are sent as given; Content-Length is added. ``timeout`` bounds the whole
        call in seconds; ``...`` (the default) means ``default_timeout``, None no limit.

        Raises :class:`TransportTimeout` on timeout, :class:`TransportError` when no complete
        response arrived, ``ValueError`` for a method or path that cannot be sent.
        """
        if self._closed:
            raise TransportError(f"the HTTP client for {self._netloc} is closed", sent=False)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if timeout is ...:
            timeout = self._default_timeout
        head = self._encode(method, path, len(body), content_type, headers)
        # The exchange is timed with the monotonic clock, not the loop's: uvloop's has
        # millisecond steps. The pool's idle times are read on it too.
        began = monotonic()
        deadline = None if timeout is None else loop.time() + timeout
        # The common case, an idle connection, takes no coroutine of its own.
        conn = self._take_idle(began) or await self._acquire(deadline)
        try:
            if not (conn.open and conn.keep):
                # Handed over by a finished request and closed since: nothing was written
                # into it, so the request may go on a new connection.
                conn.abort()
                conn = await self._connect(deadline)
            response = await self._exchange(conn, head, body, deadline, timeout)
        except BaseException:
            self._discard(conn)
            raise
        # One clock read for both: when the response was whole, and when the connection went
        # back to the pool.
        ended = monotonic()
        response.elapsed = ended - began
        if conn.keep and conn.open and not self._closed:
            self._release(conn, ended)
        else:
            self._discard(conn)
        return response

    async def close(self) -> None:
        """Close every connection; requests in flight fail with TransportError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_exception(
                    TransportError(f"the HTTP client for {self._netloc} was closed", sent=False)
                )
        self._idle.clear()
        for conn in list(self._all):
            try:
                conn.abort()
            except RuntimeError:
                pass  # made on an event loop that is closed now, and its socket with it
        if self._all and self._loop is not None and not self._loop.is_closed():
            self._all_gone = self._loop.create_future()
            await asyncio.wait([self._all_gone], timeout=_CLOSE_WAIT)

    # -- the pool ---------------------------------------------------------------------------

    def _exchange(
        self,
        conn: Connection,
        head: bytes,
        body: bytes,
        deadline: float | None,
        timeout: float | None,
    ) -> asyncio.Future[ClientResponse]:
        """Send the request; the future gets the response. A plain function returning the
        future, not a coroutine: one frame less on every request."""
        waiter = conn.send(head, body)
        if deadline is not None and not waiter.done():
            timer = self._loop.call_at(deadline, conn.expire, timeout)  # type: ignore[union-attr]
            waiter.add_done_callback(lambda _: timer.cancel())
        return waiter

    def _take_idle(self, now: float) -> Connection | None:
        """An idle connection that is alive and not expired at ``now`` (``time.monotonic``), or
        None; others are dropped."""
        idle = self._idle
        if not idle:
            return None
        oldest = now - self._idle_timeout
        while idle:
            conn = idle.pop()
            transport = conn._transport
            if (
                conn.keep
                and transport is not None
                and conn.idle_since > oldest
                and not transport.is_closing()
            ):
                self._busy += 1
                return conn
            conn.abort()
        return None

    async def _acquire(self, deadline: float | None) -> Connection:
        """A new connection, or a slot from the queue; called only when ``_take_idle`` has just
        found no idle one."""
        if self._busy < self._pool_size and not self._waiters:
            self._busy += 1
            try:
                return await self._connect(deadline)
            except BaseException:
                self._free_slot()
                raise
        return await self._wait(deadline)

    async def _wait(self, deadline: float | None) -> Connection:
        """Queue for a slot; it comes with a connection, or None to open one."""
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(fut)
        timer = None
        if deadline is not None:
            timer = loop.call_at(deadline, self._expire_wait, fut)
        try:
            conn = await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # A slot arrived just as this request gave up: pass it on.
                handed = fut.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._release(handed)
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if conn is not None:
            return conn
        try:
            return await self._connect(deadline)
        except BaseException:
            self._free_slot()
            raise

    def _expire_wait(self, fut: asyncio.Future[Connection | None]) -> None:
        if not fut.done():
            fut.set_exception(
                TransportTimeout(
                    f"no free connection to {self._netloc} in time (pool is full)", sent=False
                )
            )

    def _release(self, conn: Connection, now: float | None = None) -> None:
        """Give a healthy connection to the first waiter, else make it idle since ``now``
        (``time.monotonic``; None: read it)."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._busy -= 1
        idle = self._idle
        if now is None:
            now = monotonic()
        conn.idle_since = now
        if idle and idle[0].idle_since <= now - self._idle_timeout:
            # The least recently used one has expired: drop it rather than let it linger.
            idle.pop(0).abort()
        idle.append(conn)

    def _free_slot(self) -> None:
        """A slot's connection is gone: let the first waiter open a new one."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._busy -= 1

    def _discard(self, conn: Connection) -> None:
        conn.abort()
        self._free_slot()

    def _lost(self, conn: Connection) -> None:
        """A connection closed (a transport callback)."""
        self._all.discard(conn)
        if conn in self._idle:
            # An idle connection the server closed frees its place at once.
            self._idle.remove(conn)
        if not self._all and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    async def _connect(self, deadline: float | None) -> Connection:
        loop = self._loop
        assert loop is not None
        timeout = self._connect_timeout
        if deadline is not None:
            left = deadline - loop.time()
            timeout = left if timeout is None else min(timeout, left)
        context = None
        if self._https:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self),
                    self._host,
                    self._port,
                    ssl=context,
                    server_hostname=self._host if context is not None else None,
                )
        except TimeoutError as exc:
            raise TransportTimeout(f"connecting to {self._netloc} timed out", sent=False) from exc
        except OSError as exc:
            raise TransportError(f"cannot connect to {self._netloc}: {exc}", sent=False) from exc
        if self._closed:
            conn.abort()
            raise TransportError(f"the HTTP client for {self._netloc} was closed", sent=False)
        return conn

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Use ``loop`` from now on; connections made on an earlier loop are dropped."""
        if self._busy:
            raise RuntimeError("an HTTPClient is in use on another event loop")
        for conn in self._all:
            try:
                conn.abort()
            except RuntimeError:
                pass  # its loop is closed; so is its socket
        self._all.clear()
        self._idle.clear()
        self._loop = loop

    # -- encoding ---------------------------------------------------------------------------

    def _encode(
        self,
        method: str,
        path: str,
        length: int,
        content_type: str | None,
        headers: Mapping[str, str] | None,
    ) -> bytes:
        cached = self._prefixes.get((method, path))
        if cached is None:
            cached = self._prefix(method, path)
        prefix, length_always = cached
        extra = b""
        if content_type is not None:
            extra = self._content_types.get(content_type) or self._content_type(content_type)
        if headers:
            lines = []
            for name, value in headers.items():
                if not name or not _TOKEN.issuperset(name):
                    raise ValueError(f"not a valid header name: {name!r}")
                _check_text(value, f"header {name}")
                lines.append(f"{name}: {value}\r\n")
            extra += "".join(lines).encode("latin-1")
        if length or length_always:
            return b"%b%bContent-Length: %d\r\n\r\n" % (prefix, extra, length)
        return b"%b%b\r\n" % (prefix, extra)

    def _prefix(self, method: str, path: str) -> tuple[bytes, bool]:
        if not method or not _TOKEN.issuperset(method):
            raise ValueError(f"not a valid HTTP method: {method!r}")
        if method in ("HEAD", "CONNECT"):
            raise ValueError(f"HTTPClient does not support {method}")
        if any(c <= " " or c == "\x7f" for c in path):
            raise ValueError(f"the request path contains a space or control character: {path!r}")
        target = self._base_path + (path if path.startswith("/") else "/" + path)
        if not target.isascii():
            target = quote(target, safe="/?&=%:+,;@!$'()*~[]")
        prefix = f"{method} {target} HTTP/1.1\r\n".encode("ascii") + self._host_header
        cached = (prefix, method not in _NO_BODY)
        if len(self._prefixes) < _PREFIXES_MAX:
            self._prefixes[(method, path)] = cached
        return cached

    def _content_type(self, content_type: str) -> bytes:
        _check_text(content_type, "content type")
        line = f"Content-Type: {content_type}\r\n".encode("latin-1")
        if len(self._content_types) < _CONTENT_TYPES_MAX:
            self._content_types[content_type] = line
        return line
