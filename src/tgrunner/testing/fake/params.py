"""Turn an HTTP request into ``(token, method, params)`` the way the Bot API server does.

Paths:

- ``/bot<token>/<method>`` calls a method; the method name is matched case-insensitively by the
  caller. Like the reference server (tdlib/telegram-bot-api), everything after the slash that
  follows the token is the method name, so ``/bot<token>/getMe/`` names the method ``getMe/``
  and gets 404.
- ``/file/bot<token>/<file_path>`` downloads a file that ``getFile`` described.

Parameters come from the query string and from the body, by ``GET`` or ``POST``; when a name
appears twice the first occurrence wins and the query string comes first, as in the reference
server. The body is read according to its ``Content-Type``:

- ``application/json``: a JSON object; its values keep their JSON types (a nested object such as
  ``reply_markup`` arrives as a dict, a JSON-serialised string stays a string; the validator
  accepts both). A body that is not valid JSON, or not an object, gets ``400 Bad Request: can't
  parse JSON object`` / ``JSON object expected``. The reference server logs such a body and goes
  on without its parameters; failing loudly is a deliberate difference, because a client that
  sends broken JSON has a bug a test should see.
- ``application/x-www-form-urlencoded``: ``a=1&b=2`` with ``+`` as a space.
- ``multipart/form-data``: fields become strings, parts with a ``filename`` become
  :class:`~tgrunner.testing.fake.base.Upload`. A missing boundary, a part without a name, or a
  body that ends before the closing boundary gets ``400 Bad Request: ...``. (The reference
  server waits for the rest of a truncated body until the connection times out; a fake must
  never hang a test.)
- any other or no content type: the body is ignored, as the reference server does, so only the
  query string's parameters count and a method that needs more fails with its usual 400.

Text must be UTF-8; anything else gets ``400 Bad Request: strings must be encoded in UTF-8``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from python_multipart.multipart import MultipartParser, parse_options_header

from tgrunner.testing.fake.base import ApiError, Upload

__all__ = ["FILE", "METHOD", "parse_body", "parse_query", "parse_target"]

METHOD = "method"
"""``parse_target`` kind: a Bot API call."""
FILE = "file"
"""``parse_target`` kind: a file download."""

_NOT_UTF8 = "Bad Request: strings must be encoded in UTF-8"


def parse_target(path: str | bytes) -> tuple[str, str, str] | None:
    """Split a request path into ``(kind, token, rest)``; None when it is no API path.

    ``kind`` is :data:`METHOD` (``rest`` is the method name as sent) or :data:`FILE` (``rest``
    is the file path).
    """
    if isinstance(path, bytes):
        path = path.decode("utf-8", "replace")
    if "%" in path:
        path = unquote(path)
    if path.startswith("/bot"):
        token, sep, rest = path[4:].partition("/")
        if not sep:
            return None
        return METHOD, token, rest
    if path.startswith("/file/bot"):
        token, sep, rest = path[9:].partition("/")
        if not sep or not rest:
            return None
        return FILE, token, rest
    return None


def _merge(params: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
    for key, value in pairs:
        params.setdefault(key, value)


def parse_query(query: bytes | str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parse a query string (or a urlencoded body) into ``params`` (first occurrence wins)."""
    out: dict[str, Any] = {} if params is None else params
    if not query:
        return out
    if isinstance(query, bytes):
        try:
            query = query.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, _NOT_UTF8) from None
    _merge(out, parse_qsl(query, keep_blank_values=True))
    return out


def parse_body(content_type: str, body: bytes, params: dict[str, Any]) -> dict[str, Any]:
    """Add the body's parameters to ``params`` (which holds the query string's already)."""
    if not body:
        return params
    ctype = content_type.lower()
    if "application/json" in ctype:
        return _parse_json(body, params)
    if "application/x-www-form-urlencoded" in ctype:
        return parse_query(body, params)
    if "multipart/form-data" in ctype:
        return _parse_multipart(content_type, body, params)
    # Unknown content types: the reference server keeps the body as raw content that no method
    # reads, so it contributes no parameters.
    return params


def _parse_json(body: bytes, params: dict[str, Any]) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "utf-8" in str(exc).lower():
            raise ApiError(400, _NOT_UTF8) from None
        raise ApiError(400, "Bad Request: can't parse JSON object") from None
    if not isinstance(value, dict):
        raise ApiError(400, "Bad Request: JSON object expected")
    if not params:
        return value
    for key, item in value.items():
        params.setdefault(key, item)
    return params


class _Parts:
    """Collects the parts of a multipart body from python-multipart's callbacks."""

    __slots__ = ("data", "done", "error", "field", "header_name", "header_value", "headers", "out")

    def __init__(self, out: dict[str, Any]) -> None:
        self.out = out
        self.headers: dict[bytes, bytes] = {}
        self.header_name = b""
        self.header_value = b""
        self.data: list[bytes] = []
        self.done = False
        self.error: str | None = None

    def on_part_begin(self) -> None:
        self.headers = {}
        self.data = []

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_name.strip().lower()] = self.header_value.strip()
        self.header_name = b""
        self.header_value = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.data.append(data[start:end])

    def on_part_end(self) -> None:
        if self.error is not None:
            return
        disposition = self.headers.get(b"content-disposition")
        if disposition is None:
            self.error = "Bad Request: expected form-data content disposition"
            return
        kind, options = parse_options_header(disposition)
        name = options.get(b"name")
        if kind != b"form-data" or not name:
            self.error = "Bad Request: field name in multipart/form-data not found"
            return
        try:
            key = name.decode("utf-8")
        except UnicodeDecodeError:
            self.error = _NOT_UTF8
            return
        payload = b"".join(self.data)
        filename = options.get(b"filename")
        if filename is not None:
            ctype = self.headers.get(b"content-type", b"application/octet-stream")
            value: Any = Upload(
                filename.decode("utf-8", "replace"), ctype.decode("latin-1"), payload
            )
        else:
            try:
                value = payload.decode("utf-8")
            except UnicodeDecodeError:
                self.error = _NOT_UTF8
                return
        self.out.setdefault(key, value)

    def on_end(self) -> None:
        self.done = True


def _parse_multipart(content_type: str, body: bytes, params: dict[str, Any]) -> dict[str, Any]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "Bad Request: boundary not found")
    if len(boundary) > 70:
        raise ApiError(400, "Bad Request: boundary too big or empty")
    parts = _Parts(params)
    callbacks = {
        name: getattr(parts, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_part_data",
            "on_part_end",
            "on_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # python-multipart raises several error types for bad bodies
        raise ApiError(400, f"Bad Request: can't parse multipart/form-data: {exc}") from None
    if parts.error is not None:
        raise ApiError(400, parts.error)
    if not parts.done:
        raise ApiError(400, "Bad Request: unexpected end of multipart/form-data")
    return params
