"""The ``aiohttp`` transport: one ``aiohttp.ClientSession`` per Bot, for proxies.

It costs about 100-200 µs of CPU per request more than ``fast``, and it speaks to HTTP(S)
proxies: absolute-URI requests for ``http://`` servers, CONNECT tunnels for ``https://``
(Telegram). The Bot chooses it whenever a proxy is configured, so nothing bypasses the proxy.

Like every transport it never resends a request: aiohttp resends only idempotent methods
(GET, PUT, DELETE, …) on a reused connection that broke, and the Bot sends POST only.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from types import EllipsisType
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from tgrunner.client.transports._connection import ClientResponse
from tgrunner.client.transports.checks import check_base_url, check_limits
from tgrunner.client.transports.errors import TransportError, TransportTimeout
from tgrunner.client.transports.fast import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BODY_SIZE

__all__ = ["AiohttpTransport"]


def _check_proxy(proxy: str) -> None:
    scheme = urlsplit(proxy).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"the proxy {proxy!r} is not an http:// or https:// proxy; SOCKS proxies are not "
            "supported (run a local HTTP proxy in front of it)"
        )


class AiohttpTransport:
    """HTTP requests to one server through an ``aiohttp.ClientSession``.

    - ``base_url``: ``http://host:port`` or ``https://host[:port]``, optionally with a path
      prefix that every request path is appended to.
    - ``pool_size``: connections at most (the connector's ``limit``), default 100.
    - ``connect_timeout``: seconds to open a connection, default 10 (None: no limit).
    - ``default_timeout``: seconds for a whole request when :meth:`request` is given none,
      default 60 (None: no limit).
    - ``ssl_context``: certificates to trust, default the system's.
    - ``proxy``: an ``http://`` or ``https://`` proxy URL (credentials in it are used), default
      None: connect directly.
    - ``idle_timeout``: seconds an idle connection is kept, default 15.
    - ``max_body_size``: bytes of a response body at most, default 64 MiB (None: no limit).
      Headers are capped by aiohttp itself (8190 bytes a line).

    The session is made on the first request, on that event loop. ``await close()`` when done;
    it is safe to call twice, and a later request opens a new session.
    """

    def __init__(
        self,
        base_url: str,
        *,
        pool_size: int = 100,
        connect_timeout: float | None = 10.0,
        default_timeout: float | None = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        parts = check_base_url(base_url)
        check_limits(pool_size, idle_timeout, max_body_size)
        if proxy is not None:
            _check_proxy(proxy)
        self._base = base_url.rstrip("/")
        self._netloc = parts.netloc
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._default_timeout = default_timeout
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._proxy = proxy
        self._idle_timeout = idle_timeout
        self._max_body = sys.maxsize if max_body_size is None else max_body_size
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        via = f", proxy={self._proxy!r}" if self._proxy else ""
        return f"AiohttpTransport({self._base!r}{via})"

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed:
            if self._loop is not loop:
                raise RuntimeError(
                    "an AiohttpTransport is in use on another event loop; close it there first"
                )
            return session
        connector = aiohttp.TCPConnector(
            limit=self._pool_size, keepalive_timeout=self._idle_timeout, ssl=self._ssl
        )
        session = self._session = aiohttp.ClientSession(connector=connector)
        self._loop = loop
        return session

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        timeout: float | EllipsisType | None = ...,
    ) -> ClientResponse:
        """Send one request and read its response (see :class:`tgrunner.protocols.Transport`).

        ``timeout`` bounds the whole call in seconds; ``...`` (the default) means
        ``default_timeout``, None no limit. Raises :class:`TransportTimeout` on timeout and
        :class:`TransportError` when no complete response arrived.
        """
        session = self._session_here()
        if timeout is ...:
            timeout = self._default_timeout
        limits = aiohttp.ClientTimeout(total=timeout, connect=self._connect_timeout)
        headers = {"Content-Type": content_type} if content_type is not None else None
        url = self._base + (path if path.startswith("/") else "/" + path)
        answered = False
        began = time.monotonic()  # not the loop's clock: uvloop's has millisecond steps
        try:
            async with session.request(
                method, url, data=body, headers=headers, proxy=self._proxy, timeout=limits
            ) as response:
                answered = True
                data = await self._read(response)
                lowered = _lower(response.headers)
                return ClientResponse(response.status, lowered, data, time.monotonic() - began)
        except TransportError:
            raise
        except TimeoutError as exc:
            raise TransportTimeout(
                f"no response from {self._netloc} in {timeout:g} s"
                if timeout is not None
                else f"no response from {self._netloc}",
                answered=answered,
            ) from exc
        except (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError) as exc:
            raise TransportError(f"cannot connect to {self._netloc}: {exc}", sent=False) from exc
        except aiohttp.ServerDisconnectedError as exc:
            # Its message is a string until part of a response was parsed (then, that part).
            answered = answered or not isinstance(exc.message, str)
            when = "in the middle of the response" if answered else "before answering"
            raise TransportError(
                f"{self._netloc} closed the connection {when}", answered=answered
            ) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
            raise TransportError(
                f"{self._netloc} sent an invalid response: {exc}", answered=True
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"the connection to {self._netloc} broke: {exc}", answered=answered
            ) from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self._max_body:
                response.close()
                raise TransportError(
                    f"{self._netloc} sent a body larger than {self._max_body} bytes; the "
                    "connection was dropped (raise max_body_size if such answers are expected)",
                    answered=True,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        """Close the session and its connections. Safe to call twice."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def _lower(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """Lower-cased names; a repeated header's values joined with ``", "``."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        seen = out.get(key)
        out[key] = value if seen is None else f"{seen}, {value}"
    return out
