"""What the webhook server checks before a request reaches its handler, and who sent it.

aiohttp has no switch for a header timeout or for the number of open connections: its
``keepalive_timeout`` only closes a connection that is idle *between* requests (newer releases
also from the connection's start), and nothing caps how many are open. :class:`GuardedHandler`
adds both on aiohttp's own :class:`~aiohttp.web.RequestHandler`:

- a connection past ``max_open`` is closed in ``connection_made``, before aiohttp starts
  reading it;
- a timer armed when a connection opens, and again at the first byte of the next request on a
  kept-alive one, closes it unless a request's headers were parsed within ``header_timeout``
  (the handler disarms it). That stops a client that sends half a header line and stalls.

:func:`client_address` applies ``X-Forwarded-For`` from trusted proxies only, and
:class:`Warnings` keeps the log to one line per kind of refusal every 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from tgrunner.sources.webhook_options import Network

__all__ = [
    "Connections",
    "GuardedHandler",
    "Warnings",
    "bind_error",
    "client_address",
    "is_allowed",
    "parse_update",
]

# The source's logger: what a user configures for the webhook covers these lines too.
log = logging.getLogger("tgrunner.sources.webhook")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Connections:
    """The count of open connections that :class:`GuardedHandler` keeps and obeys."""

    def __init__(self, max_open: int, header_timeout: float) -> None:
        self.max_open = max_open
        self.header_timeout = header_timeout
        self.open = 0
        self.refused = 0


class GuardedHandler(web.RequestHandler):
    """aiohttp's connection handler with a connection cap and a header timeout."""

    def __init__(self, manager: web.Server, connections: Connections, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._connections = connections
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_request = False
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        conns = self._connections
        if conns.open >= conns.max_open:
            # Refused before aiohttp sets anything up: connection_lost then does nothing.
            conns.refused += 1
            transport.close()
            return
        conns.open += 1
        self._counted = True
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._counted:
            return
        self._counted = False
        self._connections.open -= 1
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_request and self._header_timer is None and data:
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)

    def request_started(self) -> None:
        """The handler got a request: its headers came in time."""
        self._in_request = True
        self._disarm()

    def request_ended(self) -> None:
        """The handler is done; the next request's first byte starts a new header timer."""
        self._in_request = False

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self._loop.call_later(
            self._connections.header_timeout, self._header_timeout
        )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._in_request:
            log.debug("closing a connection that sent no complete request headers in time")
            self.force_close()


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return address


def _within(address: IPAddress, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded: Sequence[str], trusted: Sequence[Network]
) -> IPAddress | None:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
    address of ``X-Forwarded-For`` (all its header lines, in order) that is not itself a
    trusted proxy. None when it cannot be told (a Unix socket, a garbled header entry)."""
    address = _address(peer) if peer else None
    if address is None or not trusted or not forwarded or not _within(address, trusted):
        return address
    hops = [hop for line in forwarded for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None or not _within(address, trusted):
            return address
    return address  # every hop is a proxy of ours: the left-most one is the client


def is_allowed(address: IPAddress | None, allowed: Sequence[Network] | None) -> bool:
    """Whether ``address`` may post: always when ``allowed`` is None."""
    if allowed is None:
        return True
    return address is not None and _within(address, allowed)


class Warnings:
    """One warning line per kind of refused request every ``every`` seconds (default 10),
    with the count refused since the last line; never the body or the secret."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[int, float] = {}
        self._quiet: dict[int, int] = {}

    def refused(self, status: int, why: str, client: object) -> None:
        now = time.monotonic()
        last = self._last.get(status)
        if last is not None and now - last < self.every:
            self._quiet[status] = self._quiet.get(status, 0) + 1
            return
        self._last[status] = now
        more = self._quiet.pop(status, 0)
        also = f" (and {more} more since the last such line)" if more else ""
        log.warning("webhook refused a request from %s with %d: %s%s", client, status, why, also)


def parse_update(body: bytes) -> dict[str, Any] | None:
    """The update in ``body``: a JSON object with a non-negative integer ``update_id`` (the
    journal takes -1 for "none"); None for anything else."""
    with contextlib.suppress(orjson.JSONDecodeError):
        update = orjson.loads(body)
        if type(update) is dict:
            uid = update.get("update_id")
            if type(uid) is int and uid >= 0:
                return update
    return None


def bind_error(listen: str, exc: OSError) -> str:
    """One line saying why ``listen`` could not be bound, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {listen} for the webhook: the port is in use; stop the other "
            "process or pass another listen address"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {listen} for the webhook: permission denied; pass a port from "
            "1024 up, such as 8443, or run behind a reverse proxy"
        )
    return (
        f"cannot listen on {listen} for the webhook ({exc.strerror or exc}); pass a host:port "
        "of this machine, such as 0.0.0.0:8443"
    )
