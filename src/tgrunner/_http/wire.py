"""The HTTP wire format of :mod:`.server`: a parsed :class:`Request`, the :class:`Response` a
handler answers, and how a response head is written (cached per status, content type and
``Connection``, with a ``Date`` line formatted once a second) and a request target split."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

import httptools

__all__ = ["Handler", "Request", "Response", "date_line"]


@dataclass(slots=True)
class Request:
    """One HTTP request, with its body read in full.

    ``path`` is percent-decoded and has no query string; ``query`` is the raw query string
    (``b""`` when there is none); ``headers`` have lower-cased names, and repeated headers are
    joined with ``", "``; ``peer`` is the client's ``(host, port)``.
    """

    method: str
    path: str
    query: bytes
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] | None


@dataclass(slots=True)
class Response:
    """What a handler answers.

    - ``status``: default 200; ``body``: default empty.
    - ``content_type``: default ``application/json``.
    - ``headers``: extra ``(name, value)`` pairs, default none.
    - ``close``: close the connection once this is sent, default False.
    - ``abort``: reset the connection (TCP RST) instead of answering, default False; this is
      fault injection, the client sees "connection reset by peer".
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    abort: bool = False


Handler = Callable[[Request], "Response | Awaitable[Response]"]


def _envelope(status: int) -> bytes:
    phrase = HTTPStatus(status).phrase
    return b'{"ok":false,"error_code":%d,"description":"%s"}' % (status, phrase.encode())


_INTERNAL = Response(500, _envelope(500))
_BAD_REQUEST = Response(400, _envelope(400), close=True)
_TOO_LARGE = Response(413, _envelope(413), close=True)
_HEAD_TOO_LARGE = Response(431, _envelope(431), close=True)

_REASONS = {s.value: s.phrase for s in HTTPStatus}
# (status, content type, close) -> the head up to the Content-Length value.
_PREFIXES: dict[tuple[int, str, bool], bytes] = {}
_PREFIXES_MAX = 1024
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}


# (Unix second, its "Date: ...\r\n" line): a response costs a clock read, not a formatting.
_date: tuple[int, bytes] = (0, b"")


def date_line() -> bytes:
    """The ``Date`` header line of a response sent now (RFC 7231 IMF-fixdate, such as
    ``Date: Sun, 06 Nov 1994 08:49:37 GMT``), CRLF included; formatted once per second."""
    global _date
    now = int(time.time())
    if now != _date[0]:
        _date = (now, b"Date: %b\r\n" % formatdate(now, usegmt=True).encode("ascii"))
    return _date[1]


def _check_header_text(text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"a response header contains a line break: {text!r}")


def _prefix(status: int, content_type: str, close: bool) -> bytes:
    key = (status, content_type, close)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        if not 100 <= status <= 999:
            raise ValueError(f"HTTP status {status} is not a 3-digit code")
        _check_header_text(content_type)
        reason = _REASONS.get(status, "")
        connection = "close" if close else "keep-alive"
        prefix = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Connection: {connection}\r\nContent-Length: "
        ).encode("latin-1")
        if len(_PREFIXES) < _PREFIXES_MAX:
            _PREFIXES[key] = prefix
    return prefix


def _head(response: Response, close: bool) -> bytes:
    """The response head without the Content-Length value and the blank line."""
    prefix = _prefix(response.status, response.content_type, close)
    if not response.headers:
        return prefix
    extra = []
    for name, value in response.headers:
        _check_header_text(name)
        _check_header_text(value)
        extra.append(f"{name}: {value}\r\n")
    # Extra headers go before Content-Length, which the prefix ends with.
    end = prefix.rindex(b"Content-Length: ")
    return prefix[:end] + "".join(extra).encode("latin-1") + prefix[end:]


def _split_target(url: bytes) -> tuple[str, bytes]:
    """The percent-decoded path and the raw query of a request target."""
    if url[:1] == b"/":
        path, _, query = url.partition(b"?")
    else:
        # Absolute form (``http://host/path``) or ``*``: let httptools take it apart.
        parsed = httptools.parse_url(url)
        path, query = parsed.path or b"/", parsed.query or b""
    if b"%" in path:
        path = unquote_to_bytes(path)
    return path.decode("utf-8", "replace"), query
