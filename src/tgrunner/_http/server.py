"""A small, fast HTTP/1.1 server on an asyncio ``Protocol`` and httptools.

Why hand-written: aiohttp costs about 100-200 µs of CPU per request on each side. FakeTelegram
must serve at least 20,000 ``sendMessage`` requests a second on one core, and the bot runtime
aims at 50 µs of CPU per echoed update, its outgoing HTTP call included. httptools (llhttp, the
parser uvicorn uses) does the parsing; this module only frames requests and responses and keeps
connections alive. It runs on the default asyncio loop and on uvloop.

What it does:

- HTTP/1.1 keep-alive by default; ``Connection: close`` is honoured, and HTTP/1.0 closes unless
  the client asked for keep-alive.
- Pipelined requests are answered in order. A handler that returns a finished ``Response`` is
  answered at once, with no task. One that returns an awaitable runs in a task; the requests
  pipelined behind it wait for it, and reading pauses once ``_MAX_PIPELINE`` of them are queued.
- A handler that raises gets a 500 with Telegram's error envelope, and a log line with the
  traceback; the connection stays usable.
- Unparsable input gets 400, a body over ``max_body`` gets 413 (as soon as the Content-Length or
  the chunks so far say so, without buffering the rest), and both close the connection. A
  request cut off by a disconnect is dropped silently. ``Expect: 100-continue`` is answered.
- A client that disconnects does not cancel the handler of its request: a handler may have side
  effects that must finish (a journal write); its response is dropped.
- Every response carries a ``Date`` header (RFC 7231), which clients use to measure clock skew.

Not supported: TLS client certificates, request trailers, protocol upgrades (an ``Upgrade``
request is answered as a plain request, then the connection closes), ``HEAD`` bodies are never
sent (their Content-Length is).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from collections.abc import Awaitable
from ssl import SSLContext
from typing import cast

import httptools

from tgrunner._http.headers import add_header
from tgrunner._http.wire import (
    _BAD_REQUEST,
    _HEAD_TOO_LARGE,
    _INTERNAL,
    _METHODS,
    _TOO_LARGE,
    Handler,
    Request,
    Response,
    _head,
    _split_target,
    date_line,
)

__all__ = ["HTTPServer", "Handler", "Request", "Response"]

log = logging.getLogger(__name__)


# Requests queued behind a slow handler on one connection before reading pauses, and the
# queue length at which it resumes.
_MAX_PIPELINE = 32
_RESUME_PIPELINE = 8
# A request head (request line and headers) larger than this gets 431.
_MAX_HEAD = 64 * 1024
# After an error response the server half-closes and drains what the client still sends, so
# that the client reads the error instead of a reset; this bounds how long.
_LINGER = 2.0
# Bodies up to this size are copied into the head's buffer so a response is one write.
_COPY_BODY = 64 * 1024
# Handler tasks that ignore cancellation are waited for this long by close().
_CLOSE_WAIT = 1.0

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing the rest of the data."""


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs the handler, writes responses in order."""

    __slots__ = (
        "_body",
        "_close_when_done",
        "_closing",
        "_continue",
        "_handler",
        "_head_bytes",
        "_headers",
        "_in_head",
        "_keep",
        "_last",
        "_linger",
        "_loop",
        "_no_more",
        "_parser",
        "_peer",
        "_queue",
        "_read_paused",
        "_server",
        "_size",
        "_task",
        "_timer",
        "_transport",
        "_url",
        "_write_paused",
    )

    def __init__(self, server: HTTPServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._handler = server._handler
        self._loop = loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer: tuple[str, int] | None = None
        # The request being parsed.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._keep = True
        self._in_head = True
        self._head_bytes = 0
        self._continue = False
        # The requests answered in order: the one being handled by a task, those queued behind.
        self._task: asyncio.Task[None] | None = None
        self._queue: deque[tuple[Request | None, Response | bool]] = deque()
        # _no_more: parse nothing further (closing request, error, EOF); _closing: the
        # transport is closed or closing; _close_when_done: close once the queue drains.
        self._no_more = False
        self._closing = False
        self._close_when_done = False
        self._read_paused = False
        self._write_paused = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None

    # -- transport callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = (peer[0], peer[1])
        self._server._connections.add(self)
        self._last = self._loop.time()
        self._timer = self._loop.call_later(self._server._keepalive, self._on_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._closing = True
        self._no_more = True
        self._queue.clear()
        self._body = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._server._forget(self)

    def data_received(self, data: bytes) -> None:
        if self._no_more:
            return  # after an error or a closing request: drain and drop
        self._last = self._loop.time()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request before the upgrade was dispatched; nothing after it is HTTP.
            self._no_more = True
            self._close_when_done = True
            self._close_if_done()
            return
        except httptools.HttpParserError:
            if not self._no_more:  # not our own _Stop
                self._fail(_BAD_REQUEST)
            return
        if self._in_head and self._head_bytes > _MAX_HEAD and not self._no_more:
            self._fail(_HEAD_TOO_LARGE)

    def eof_received(self) -> bool | None:
        self._no_more = True
        # Half-close is kept only on plain TCP: asyncio's TLS transport cannot do it.
        if (
            self._linger is None
            and (self._task is not None or self._queue)
            and self._server._ssl is None
        ):
            # A half-closed client still waits for its answers.
            self._close_when_done = True
            return True
        return None  # the transport closes itself

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if len(self._queue) < _RESUME_PIPELINE:
            self._resume_reading()

    # -- parser callbacks -------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url = url if not self._url else self._url + url

    def on_header(self, name: bytes, value: bytes) -> None:
        add_header(self._headers, name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._keep = self._parser.should_keep_alive()
        headers = self._headers
        length = headers.get("content-length")
        # llhttp has checked that Content-Length is digits only.
        if length is not None and int(length) > self._server._max_body:
            self._fail(_TOO_LARGE)
            raise _Stop
        expect = headers.get("expect")
        if expect is not None and expect.lower() == "100-continue":
            if self._task is None and not self._queue:
                self._write(_CONTINUE)
            else:
                # An interim answer now would be read as one to an earlier request.
                self._continue = True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._server._max_body:
            self._fail(_TOO_LARGE)
            raise _Stop
        self._body.append(body)

    def on_message_complete(self) -> None:
        chunks = self._body
        body = b"" if not chunks else chunks[0] if len(chunks) == 1 else b"".join(chunks)
        path, query = _split_target(self._url)
        raw_method = self._parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        request = Request(method, path, query, self._headers, body, self._peer)
        keep = self._keep
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0
        self._in_head = True
        self._continue = False
        if self._task is None and not self._queue:
            self._dispatch(request, keep)
        else:
            self._queue.append((request, keep))
            if len(self._queue) >= _MAX_PIPELINE:
                self._pause_reading()
        if not keep or self._closing:
            # Whatever the client sent after a closing request (or a reset) is not answered.
            self._no_more = True
            raise _Stop

    # -- answering --------------------------------------------------------------------------

    def _dispatch(self, request: Request, keep: bool) -> None:
        try:
            result = self._handler(request)
        except Exception:
            log.exception("HTTP handler failed on %s %s", request.method, request.path)
            result = _INTERNAL
        if result.__class__ is Response or isinstance(result, Response):
            self._respond(result, keep, request.method == "HEAD")
            return
        task = self._loop.create_task(self._complete(result, request, keep))
        self._task = task
        self._server._track(task)

    async def _complete(self, awaitable: Awaitable[Response], request: Request, keep: bool) -> None:
        try:
            response = await awaitable
            if not isinstance(response, Response):
                raise TypeError(f"the handler returned {type(response).__name__}, not a Response")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._server._closed:
                raise  # close() is shutting this connection down
            if task is not None and task.cancelling():
                self._task = None
                self._reset()
                raise
            # The handler's own CancelledError, not a cancellation of this task.
            log.error("HTTP handler on %s %s was cancelled", request.method, request.path)
            response = _INTERNAL
        except Exception:
            log.exception("HTTP handler failed on %s %s", request.method, request.path)
            response = _INTERNAL
        self._task = None
        if self._closing:
            return
        self._last = self._loop.time()
        self._respond(response, keep, request.method == "HEAD")
        self._drain()

    def _drain(self) -> None:
        """Answer the queued requests until one needs a task, then resume reading if due."""
        queue = self._queue
        while queue and self._task is None and not self._closing:
            request, item = queue.popleft()
            if request is None:
                assert isinstance(item, Response)
                self._respond_error(item)
                return
            self._dispatch(request, item)  # type: ignore[arg-type]
        if self._closing or self._task is not None:
            return
        if self._read_paused and len(queue) < _RESUME_PIPELINE and not self._write_paused:
            self._resume_reading()
        if self._continue and not queue:
            self._continue = False
            self._write(_CONTINUE)
        self._close_if_done()

    def _respond(self, response: Response, keep: bool, head_only: bool) -> None:
        if self._closing:
            return
        if response.abort:
            self._reset()
            return
        close = response.close or not keep or self._server._closed
        try:
            head = _head(response, close)
        except ValueError:
            log.exception("HTTP handler returned an invalid response")
            response, head = _INTERNAL, _head(_INTERNAL, close)
        body = response.body
        transport = self._transport
        assert transport is not None
        # The head ends with "Content-Length: "; the Date line follows its value.
        date = date_line()
        if head_only:
            transport.write(b"%b%d\r\n%b\r\n" % (head, len(body), date))
        elif len(body) <= _COPY_BODY:
            transport.write(b"%b%d\r\n%b\r\n%b" % (head, len(body), date, body))
        else:
            transport.write(b"%b%d\r\n%b\r\n" % (head, len(body), date))
            transport.write(body)
        if close:
            self._no_more = True
            self._close()

    def _respond_error(self, response: Response) -> None:
        """Send an error that ends the connection, then drain what the client still sends."""
        if self._closing:
            return
        transport = self._transport
        assert transport is not None
        body = response.body
        head = _head(response, True)
        transport.write(b"%b%d\r\n%b\r\n%b" % (head, len(body), date_line(), body))
        if not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self._resume_reading()
        self._linger = self._loop.call_later(_LINGER, self._close)

    def _fail(self, response: Response) -> None:
        """Stop parsing; answer ``response`` (a closing error) once earlier answers are out."""
        self._no_more = True
        self._body = []
        self._continue = False
        if self._task is None and not self._queue:
            self._respond_error(response)
        else:
            self._queue.append((None, response))

    def _write(self, data: bytes) -> None:
        if not self._closing and self._transport is not None:
            self._transport.write(data)

    # -- connection state -------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._read_paused and not self._closing and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self._closing and self._transport is not None:
            self._read_paused = False
            self._transport.resume_reading()

    def _close_if_done(self) -> None:
        if self._close_when_done and self._task is None and not self._queue:
            self._close()

    def _close(self) -> None:
        if not self._closing and self._transport is not None:
            self._closing = True
            self._transport.close()

    def _reset(self) -> None:
        """Drop the connection with a TCP RST, so the client sees a reset, not a clean EOF."""
        transport = self._transport
        if transport is None:
            return
        self._closing = True
        self._no_more = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
            except OSError:
                pass
        transport.abort()

    def _on_idle(self) -> None:
        self._timer = None
        if self._closing:
            return
        timeout = self._server._keepalive
        if self._task is not None or self._queue:
            delay = timeout
        else:
            delay = self._last + timeout - self._loop.time()
            if delay <= 0:
                self._no_more = True
                self._close()
                return
        self._timer = self._loop.call_later(delay, self._on_idle)

    def shutdown(self) -> None:
        """Close for server shutdown: unsent responses still flush."""
        self._no_more = True
        self._queue.clear()
        self._close()


class HTTPServer:
    """An HTTP/1.1 server that calls ``handler`` for each request.

    - ``handler``: takes a :class:`Request` and returns a :class:`Response`, or an awaitable of
      one. Return a finished ``Response`` whenever you can: it is written at once, with no task.
    - ``host``: default ``127.0.0.1``; ``port``: default 0, any free port (see :attr:`port`).
    - ``max_body``: largest request body in bytes, default 50 MiB; larger gets 413.
    - ``keepalive_timeout``: seconds an idle connection stays open, default 75.
    - ``backlog``: the listen backlog, default 1024.
    - ``ssl``: serve HTTPS with this context, default None (plain HTTP).

    ``await start()`` binds, ``await close()`` stops; ``close()`` is safe to call twice.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int = 50 * 1024 * 1024,
        keepalive_timeout: float = 75.0,
        backlog: int = 1024,
        ssl: SSLContext | None = None,
    ) -> None:
        if keepalive_timeout <= 0:
            raise ValueError("keepalive_timeout must be positive")
        if max_body < 0:
            raise ValueError("max_body must not be negative")
        self._handler = handler
        self._host = host
        self._port = port
        self._max_body = max_body
        self._keepalive = keepalive_timeout
        self._backlog = backlog
        self._ssl = ssl
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._all_gone: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Bind and listen on the running loop; :attr:`port` and :attr:`url` are valid after."""
        if self._server is not None or self._closed:
            raise RuntimeError("HTTPServer.start() was already called")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self, loop),
            self._host,
            self._port,
            backlog=self._backlog,
            ssl=self._ssl,
        )
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        """The bound port (the requested one until :meth:`start` has run)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL, like ``http://127.0.0.1:8081``."""
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    @property
    def connections(self) -> int:
        """How many client connections are open."""
        return len(self._connections)

    async def close(self) -> None:
        """Stop accepting, cancel running handlers, close every connection. Safe to call twice.

        Responses already written are flushed; requests still being handled get no answer.
        """
        if self._closed:
            return
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for conn in list(self._connections):
            conn.shutdown()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=_CLOSE_WAIT)
            if stuck:
                log.warning("%d HTTP handlers ignored cancellation at close", len(stuck))
        if self._connections:
            self._all_gone = asyncio.get_running_loop().create_future()
            await asyncio.wait([self._all_gone], timeout=_CLOSE_WAIT)
            if self._connections:
                # A client that reads nothing keeps a flushing close open: reset it.
                for conn in list(self._connections):
                    conn._reset()
                await asyncio.wait([self._all_gone], timeout=_CLOSE_WAIT)
        if server is not None:
            await server.wait_closed()

    # -- bookkeeping for connections --------------------------------------------------------

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)
