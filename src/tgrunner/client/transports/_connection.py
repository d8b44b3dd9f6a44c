"""One connection of the ``fast`` transport's pool: writes a request, parses its response.

An asyncio ``Protocol`` fed by the event loop; :mod:`.fast` holds the pool and decides which
connection a request goes on. The connection enforces the response caps, and records how far
an exchange got (``sent``/``answered`` on the :class:`TransportError` it raises).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import httptools

from tgrunner._http.headers import add_header
from tgrunner.client.transports.errors import TransportError, TransportTimeout

__all__ = ["ClientResponse", "Connection", "Pool"]

# Bodies up to this size are copied behind the head so a request is one write.
_COPY_BODY = 64 * 1024


class Pool(Protocol):
    """What a connection needs of the pool that owns it (:class:`~.fast.HTTPClient`)."""

    _netloc: str
    _closed: bool
    _loop: asyncio.AbstractEventLoop | None
    _all: set[Any]
    _max_body: int
    _max_head: int

    def _lost(self, conn: Any) -> None: ...


class _TooLarge(Exception):
    """Raised in a parser callback to stop parsing a response that passed a cap."""


@dataclass(slots=True)
class ClientResponse:
    """An HTTP response: ``headers`` have lower-cased names (repeats joined with ``", "``);
    ``elapsed``: seconds from the request's start (waiting for a pooled connection included)
    to its whole response, set by the transport (default 0.0; not compared)."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float = field(default=0.0, compare=False)


class Connection(asyncio.Protocol):
    """One pooled connection: sends a request, parses its response."""

    __slots__ = (
        "_body",
        "_body_size",
        "_client",
        "_head_fed",
        "_headers",
        "_max_body",
        "_max_head",
        "_parser",
        "_received",
        "_status",
        "_transport",
        "_waiter",
        "idle_since",
        "keep",
        "open",
        "served",
    )

    def __init__(self, client: Pool) -> None:
        self._client = client
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[ClientResponse] | None = None
        self._received = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        # Bytes fed to the parser while the head was incomplete: an upper bound of its size.
        self._head_fed = 0
        self._max_body = client._max_body
        self._max_head = client._max_head
        # keep: the server agreed to keep the connection open; served: responses read so far;
        # idle_since: time.monotonic() when it last went back to the pool.
        self.idle_since = 0.0
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
        in_head = not self._status
        if in_head:
            self._head_fed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._waiter is not None:  # else a cap already failed it
                self._fail(
                    TransportError(
                        f"{self._client._netloc} sent an invalid response: {exc}", answered=True
                    )
                )
            return
        if (
            in_head
            and self._head_fed > self._max_head
            and not self._status
            and self._waiter is not None
        ):
            # Still in the head: httptools buffers a header until it ends, so bound the bytes.
            self._fail(self._too_large("headers", self._max_head))

    # -- parser callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        add_header(self._headers, name, value)

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        # Counted exactly only when the bytes fed so far (the body's first part included) say
        # the head may be too large: rare, and nothing per header on the common path.
        if self._head_fed > self._max_head and self._head_size() > self._max_head:
            self._fail(self._too_large("headers", self._max_head))
            raise _TooLarge

    def _head_size(self) -> int:
        return sum(len(name) + len(value) + 4 for name, value in self._headers.items())

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._fail(self._too_large("a body", self._max_body))
            raise _TooLarge
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self._status = 0
            self._headers = {}
            self._body = []
            self._head_fed = self._body_size = 0
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
            error = self._broken(None)
            error.sent = False
            waiter.set_exception(error)
            return waiter
        self._waiter = waiter
        self._received = False
        self._head_fed = self._body_size = 0
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
            waiter.set_exception(
                TransportTimeout(
                    f"no response from {netloc} in {timeout:g} s", answered=self._received
                )
            )

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

    def _too_large(self, what: str, limit: int) -> TransportError:
        return TransportError(
            f"{self._client._netloc} sent {what} larger than {limit} bytes; the connection was "
            "dropped (raise the HTTPClient's limit if such answers are expected)",
            answered=True,
        )

    def _broken(self, exc: Exception | None) -> TransportError:
        netloc = self._client._netloc
        answered = self._received
        if self._client._closed:
            error = TransportError(f"the HTTP client for {netloc} was closed", answered=answered)
        elif exc is None:
            when = "in the middle of the response" if answered else "before answering"
            error = TransportError(f"{netloc} closed the connection {when}", answered=answered)
        else:
            error = TransportError(f"the connection to {netloc} broke: {exc}", answered=answered)
        error.__cause__ = exc
        return error
