"""A python-telegram-bot ``BaseRequest`` on tgrunner's HTTP client.

PTB's default request class sends every Bot API call through httpx, which costs several hundred
microseconds of CPU per call. :class:`TgrunnerRequest` sends the same calls through
tgrunner's ``fast`` HTTP transport instead, with JSON bodies encoded by orjson (multipart
when the call uploads files), and parses answers with orjson.

It only moves bytes: it returns ``(status, body)`` from :meth:`~TgrunnerRequest.do_request`, so
PTB's own ``BaseRequest.post`` turns Telegram's answers into PTB's exceptions (``BadRequest``,
``RetryAfter``, ``Forbidden``, ...) exactly as it does with ``HTTPXRequest``. Transport
failures become ``telegram.error.TimedOut`` and ``telegram.error.NetworkError``.

::

    from telegram.ext import ApplicationBuilder
    from tgrunner.frontends.ptb.request import TgrunnerRequest

    app = ApplicationBuilder().token(TOKEN).request(TgrunnerRequest()).build()

The PTB front-end installs it on the application's bot by default (``request="tgrunner"``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

from tgrunner.client import calls
from tgrunner.client.multipart import InputFile, encode_multipart
from tgrunner.client.transports.fast import (
    ClientResponse,
    HTTPClient,
    TransportError,
    TransportTimeout,
)
from tgrunner.errors import FloodLimited
from tgrunner.flood.limiter import FloodControl
from tgrunner.frontends.ptb.compat import DEFAULT_VALUE

__all__ = ["TgrunnerRequest"]

_JSON = "application/json"


def _resolve(value: Any, default: float | None) -> float | None:
    return default if isinstance(value, DEFAULT_VALUE) else cast("float | None", value)


class TgrunnerRequest(BaseRequest):
    """Send PTB's Bot API calls through tgrunner's keep-alive HTTP client.

    - ``pool_size``: keep-alive connections per server, default 256 (as ``HTTPXRequest``).
    - ``read_timeout`` / ``write_timeout`` / ``connect_timeout`` / ``pool_timeout``: seconds,
      defaults 5 / 5 / 5 / 1 as in ``HTTPXRequest``; ``media_write_timeout`` (default 20)
      replaces ``write_timeout`` for uploads. tgrunner's client has one deadline per request,
      so a call may take the sum of the four (None for any of them: no deadline); connecting
      alone is bounded by ``connect_timeout``.

    - ``flood``: a :class:`~tgrunner.flood.limiter.FloodControl` every call with a
      ``chat_id`` goes through (``request.flood`` may be set later), default None: none. The
      PTB front-end gives it the process's, so the bot's calls are paced, ordered and resent
      like tgrunner's own; over a bound, the call raises PTB's ``RetryAfter``.

    A client per server (``scheme://host:port``) is opened on first use, so the Bot API and a
    file server elsewhere both work. ``User-Agent`` is not sent. Reusable after
    :meth:`shutdown`.
    """

    __slots__ = (
        "_clients",
        "_connect_timeout",
        "_last",
        "_media_write_timeout",
        "_pool_size",
        "_pool_timeout",
        "_read_timeout",
        "_write_timeout",
        "flood",
    )

    def __init__(
        self,
        *,
        pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
        flood: FloodControl | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._pool_size = pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self.flood = flood
        self._clients: dict[str, HTTPClient] = {}
        # The origin ("http://host:port/") and client of the last request: nearly every call
        # goes to the same server, so this skips parsing the URL.
        self._last: tuple[str, HTTPClient] | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout in seconds (PTB adds it to ``getUpdates``' long poll)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Nothing to do: connections are opened on first use."""

    async def shutdown(self) -> None:
        """Close every connection. Safe to call twice; the request can be used again after."""
        clients, self._clients = self._clients, {}
        self._last = None
        for client in clients.values():
            await client.close()

    @staticmethod
    def parse_json_payload(payload: bytes) -> dict[str, Any]:
        """Parse Telegram's answer with orjson; ``TelegramError`` when it is not JSON."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise TelegramError("Invalid server response") from exc
        if not isinstance(data, dict):
            raise TelegramError("Invalid server response")
        return data

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one request; return its HTTP status and body for PTB to interpret."""
        client, path = self._client_for(url)
        body = b""
        ctype: str | None = None
        uploads = request_data is not None and request_data.contains_files
        params = None  # PTB builds the dict at each access: once is enough
        if request_data is not None:
            if uploads:
                body, ctype = _multipart(request_data)
            else:
                params = request_data.parameters
                body, ctype = orjson.dumps(params), _JSON
        parts = (
            _resolve(read_timeout, self._read_timeout),
            _resolve(write_timeout, self._media_write_timeout if uploads else self._write_timeout),
            _resolve(connect_timeout, self._connect_timeout),
            _resolve(pool_timeout, self._pool_timeout),
        )
        timeout = None if None in parts else sum(cast("tuple[float, ...]", parts))
        flood = self.flood
        chat_id = None
        if flood is not None and request_data is not None:
            chat_id = (params if params is not None else request_data.parameters).get("chat_id")
        request: Awaitable[ClientResponse]
        if flood is None or chat_id is None:
            request = client.request(method, path, body, content_type=ctype, timeout=timeout)
        else:
            request = _through(flood, chat_id, client, method, path, body, ctype, timeout)
        if calls.on_call is not None:
            request = calls.reported(path.rpartition("/")[2], request)
        try:
            response = await request
        except FloodLimited as exc:
            # PTB's own RetryAfter, from a 429 answer as Telegram would give it.
            return 429, _too_many(exc)
        except TransportTimeout as exc:
            raise TimedOut(str(exc)) from exc
        except (TransportError, OSError) as exc:
            raise NetworkError(f"tgrunner HTTP client: {exc}") from exc
        return response.status, response.body

    def _client_for(self, url: str) -> tuple[HTTPClient, str]:
        last = self._last
        if last is not None and url.startswith(last[0]):
            return last[1], url[len(last[0]) - 1 :]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NetworkError(f"cannot send a request to {url!r}: not an http(s) URL")
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self._clients.get(origin)
        if client is None:
            client = HTTPClient(
                origin,
                pool_size=self._pool_size,
                connect_timeout=self._connect_timeout,
                default_timeout=None,
            )
            self._clients[origin] = client
        self._last = (origin + "/", client)
        path = url[len(origin) :] or "/"
        return client, path


def _through(
    flood: FloodControl,
    chat_id: Any,
    client: HTTPClient,
    method: str,
    path: str,
    body: bytes,
    ctype: str | None,
    timeout: float | None,
) -> Awaitable[ClientResponse]:
    """The call through flood control; a function of its own, as a closure in do_request
    would make its locals cells, which costs the calls without a chat too."""
    return flood.call(
        path.rpartition("/")[2],
        chat_id,
        lambda: client.request(method, path, body, content_type=ctype, timeout=timeout),
    )


def _too_many(exc: FloodLimited) -> bytes:
    return orjson.dumps(
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: {exc.description}",
            "parameters": {"retry_after": math.ceil(exc.retry_after or 0)},
        }
    )


def _multipart(request_data: RequestData) -> tuple[bytes, str]:
    """The body of an upload: the JSON-encoded parameters plus one part per file."""
    fields: dict[str, Any] = dict(request_data.json_parameters)
    for name, (filename, content, mimetype) in request_data.multipart_data.items():
        data = content if isinstance(content, bytes) else content.read()
        fields[name] = InputFile(data, filename, mimetype)
    return encode_multipart(fields)
