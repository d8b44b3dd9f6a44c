"""A small, fast HTTP/1.1 client with a keep-alive pool, on an asyncio ``Protocol`` and httptools.

Why hand-written: aiohttp costs about 100-200 µs of CPU per request on each side, and the bot
runtime aims at 50 µs of CPU per echoed update, its outgoing Bot API call included. httptools
(llhttp, the parser uvicorn uses) parses the responses; this module only frames requests and
keeps a pool of connections to one server. It runs on the default asyncio loop and on uvloop.

How the pool behaves:

- Up to ``pool_size`` connections; the most recently used idle one is reused first (LIFO, so
  the rest can time out on the server), and requests wait in FIFO order when all are busy.
- A reused connection that the server had closed cleanly (EOF, or a write into it failing)
  before any byte of the response arrived is retried once on a new connection: the server
  closed it while it was idle, so it never saw the request. A reset (RST) is *not* retried:
  that is how a server, FakeTelegram's fault injection included, drops a request it had read.
- A timeout, a cancellation or any error discards the connection: a connection with a response
  still due is never reused.

Every failure below HTTP raises :class:`TransportError` (:class:`TransportTimeout` for
timeouts), whose ``__cause__`` is the ``OSError`` when there was one. HTTP error statuses are
not exceptions: they come back as a :class:`ClientResponse`.

``https://`` base URLs are supported through an ``ssl.SSLContext`` (the default one verifies
certificates against the system's CA store). ``HEAD`` and ``CONNECT`` are not supported.
A client belongs to one event loop at a time.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import EllipsisType
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from tgrunner._http.headers import add_header

__all__ = ["ClientResponse", "HTTPClient", "TransportError", "TransportTimeout"]

# Bodies up to this size are copied behind the head so a request is one write.
_COPY_BODY = 64 * 1024
# close() waits this long for connections to finish closing.
_CLOSE_WAIT = 1.0
_PREFIXES_MAX = 1024
_CONTENT_TYPES_MAX = 64
# Methods whose requests carry no Content-Length when their body is empty.
_NO_BODY = frozenset({"GET", "DELETE", "OPTIONS", "TRACE"})
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


class TransportError(Exception):
    """The request got no complete HTTP response: connecting failed, or the connection broke.

    The message says what happened and to which server; ``__cause__`` is the ``OSError``
    behind it when there was one.
    """


class TransportTimeout(TransportError):
    """Connecting, waiting for a pooled connection, or waiting for the response took too long."""


class _Stale(TransportError):
    """A reused connection was closed by the server before it answered: safe to retry."""


@dataclass(slots=True)
class ClientResponse:
    """An HTTP response: ``headers`` have lower-cased names (repeats joined with ``", "``)."""

    status: int
    headers: dict[str, str]
    body: bytes


def _check_text(text: str, what: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"the request's {what} contains a line break: {text!r}")


class _Connection(asyncio.Protocol):
    """One pooled connection: sends a request, parses its response."""

    __slots__ = (
        "_body",
        "_client",
        "_headers",
        "_parser",
        "_received",
        "_status",
        "_transport",
        "_waiter",
        "keep",
        "open",
        "served",
    )

    def __init__(self, client: HTTPClient) -> None:
        self._client = client
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[ClientResponse] | None = None
        self._received = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        # keep: the server agreed to keep the connection open; served: responses read so far.
        self.open = False
        self.keep = True
        self.served = 0

    # -- transport callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self._transport = cast(asyncio.Transport, transport)
        self.open = True
        self._client._all.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._transport = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._broken(exc))
        self._client._lost(self)

    def eof_received(self) -> bool | None:
        self.keep = False
        if self._waiter is not None and self._status and self._until_eof():
            self._complete()
        return None  # close

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Nothing was asked: a server that talks out of turn cannot be trusted with more.
            self.keep = False
            self.abort()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"{self._client._netloc} sent an invalid response: {exc}"))

    # -- parser callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        add_header(self._headers, name, value)

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self._status = 0
            self._headers = {}
            self._body = []
            return
        self.keep = self._parser.should_keep_alive()
        self._complete()

    # -- requests ---------------------------------------------------------------------------

    def send(self, head: bytes, body: bytes) -> asyncio.Future[ClientResponse]:
        """Write one request; the future gets its response or a TransportError."""
        transport = self._transport
        waiter = self._client._loop.create_future()  # type: ignore[union-attr]
        if transport is None or transport.is_closing():
            # Closed between the pool and here: the server cannot have seen this request.
            waiter.set_exception(self._broken(None))
            return waiter
        self._waiter = waiter
        self._received = False
        if len(body) <= _COPY_BODY:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        return waiter

    def expire(self, timeout: float | None) -> None:
        """The request's time is up (a timer callback)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            netloc = self._client._netloc
            waiter.set_exception(TransportTimeout(f"no response from {netloc} in {timeout:g} s"))

    def abort(self) -> None:
        """Drop the connection at once; a pending request fails."""
        self.keep = False
        if self._transport is not None:
            self._transport.abort()

    def _complete(self) -> None:
        chunks = self._body
        body = b"" if not chunks else chunks[0] if len(chunks) == 1 else b"".join(chunks)
        response = ClientResponse(self._status, self._headers, body)
        self._status = 0
        self._headers = {}
        self._body = []
        self.served += 1
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _until_eof(self) -> bool:
        """Whether the response's body is delimited by the end of the connection."""
        headers = self._headers
        return "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        )

    def _fail(self, error: TransportError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.abort()

    def _broken(self, exc: Exception | None) -> TransportError:
        netloc = self._client._netloc
        if self._client._closed:
            error = TransportError(f"the HTTP client for {netloc} was closed")
        elif (
            self.served and not self._received and (exc is None or isinstance(exc, BrokenPipeError))
        ):
            error = _Stale(f"{netloc} closed the idle keep-alive connection")
        elif exc is None:
            when = "in the middle of the response" if self._received else "before answering"
            error = TransportError(f"{netloc} closed the connection {when}")
        else:
            error = TransportError(f"the connection to {netloc} broke: {exc}")
        error.__cause__ = exc
        return error


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
    ) -> None:
        parts = urlsplit(base_url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the base URL must be http://host[:port] or https://…: {base_url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"the base URL may not have a query, fragment or user: {base_url!r}")
        if ssl_context is not None and scheme != "https":
            raise ValueError("ssl_context is for https:// base URLs only")
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        default_port = 443 if scheme == "https" else 80
        self._host = parts.hostname.encode("idna").decode("ascii")
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
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
            raise TransportError(f"the HTTP client for {self._netloc} is closed")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if timeout is ...:
            timeout = self._default_timeout
        head = self._encode(method, path, len(body), content_type, headers)
        deadline = None if timeout is None else loop.time() + timeout
        # The common case, an idle connection, takes no coroutine of its own.
        conn = self._take_idle() or await self._acquire(deadline)
        try:
            try:
                response = await self._exchange(conn, head, body, deadline, timeout)
            except _Stale:
                # The server closed this idle connection before reading the request.
                conn.abort()
                conn = await self._connect(deadline)
                response = await self._exchange(conn, head, body, deadline, timeout)
        except BaseException:
            self._discard(conn)
            raise
        if conn.keep and conn.open and not self._closed:
            self._release(conn)
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
                fut.set_exception(TransportError(f"the HTTP client for {self._netloc} was closed"))
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
        conn: _Connection,
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

    def _take_idle(self) -> _Connection | None:
        """An idle connection that is still usable, or None."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.open and conn.keep:
                self._busy += 1
                return conn
        return None

    async def _acquire(self, deadline: float | None) -> _Connection:
        conn = self._take_idle()
        if conn is not None:
            return conn
        if self._busy < self._pool_size and not self._waiters:
            self._busy += 1
            try:
                return await self._connect(deadline)
            except BaseException:
                self._free_slot()
                raise
        return await self._wait(deadline)

    async def _wait(self, deadline: float | None) -> _Connection:
        """Queue for a slot; it comes with a connection, or None to open one."""
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[_Connection | None] = loop.create_future()
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

    def _expire_wait(self, fut: asyncio.Future[_Connection | None]) -> None:
        if not fut.done():
            fut.set_exception(
                TransportTimeout(f"no free connection to {self._netloc} in time (pool is full)")
            )

    def _release(self, conn: _Connection) -> None:
        """Give a healthy connection to the first waiter, else make it idle."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(conn)
                return
        self._busy -= 1
        self._idle.append(conn)

    def _free_slot(self) -> None:
        """A slot's connection is gone: let the first waiter open a new one."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._busy -= 1

    def _discard(self, conn: _Connection) -> None:
        conn.abort()
        self._free_slot()

    def _lost(self, conn: _Connection) -> None:
        """A connection closed (a transport callback)."""
        self._all.discard(conn)
        if conn in self._idle:
            # An idle connection the server closed frees its place at once.
            self._idle.remove(conn)
        if not self._all and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    async def _connect(self, deadline: float | None) -> _Connection:
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
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=context,
                    server_hostname=self._host if context is not None else None,
                )
        except TimeoutError as exc:
            raise TransportTimeout(f"connecting to {self._netloc} timed out") from exc
        except OSError as exc:
            raise TransportError(f"cannot connect to {self._netloc}: {exc}") from exc
        if self._closed:
            conn.abort()
            raise TransportError(f"the HTTP client for {self._netloc} was closed")
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
