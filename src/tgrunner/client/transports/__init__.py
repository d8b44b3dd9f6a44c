"""HTTP transports of the Bot API client, chosen by name and imported only when chosen.

- ``fast`` (default): the httptools keep-alive client of :mod:`.fast`, about 30 µs of CPU
  per request.
- ``aiohttp``: an ``aiohttp.ClientSession`` (:mod:`.aiohttp`); it speaks to HTTP proxies, and
  the Bot uses it whenever a proxy is configured.

Both implement :class:`tgrunner.protocols.Transport` and raise the errors of :mod:`.errors`.
"""

from __future__ import annotations

import importlib
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from tgrunner.errors import ConfigError
from tgrunner.protocols import Transport

__all__ = ["TRANSPORTS", "check_name", "proxy_from_env", "transport_class"]

TRANSPORTS: dict[str, str] = {
    "fast": "tgrunner.client.transports.fast:HTTPClient",
    "aiohttp": "tgrunner.client.transports.aiohttp:AiohttpTransport",
}
"""Transport names and the import strings of their classes."""


def check_name(name: str) -> str:
    """``name`` when it is a transport in :data:`TRANSPORTS`, else ConfigError naming them."""
    if name not in TRANSPORTS:
        raise ConfigError(
            f"Unknown HTTP transport {name!r}; choose one of: {', '.join(TRANSPORTS)}."
        )
    return name


def transport_class(name: str) -> Callable[..., Transport]:
    """The class of the transport called ``name``, imported now; ConfigError if unknown."""
    module, _, attr = TRANSPORTS[check_name(name)].partition(":")
    cls: Callable[..., Transport] = getattr(importlib.import_module(module), attr)
    return cls


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (``*``, or comma-separated hosts, ``.domain``s, ``host:port``s)
    names this host."""
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def proxy_from_env(url: str) -> str | None:
    """The proxy the environment sets for ``url``, or None.

    Read as the standard library and curl read them: ``https_proxy``/``HTTPS_PROXY`` for an
    ``https://`` URL (``http_proxy`` for ``http://``), else ``all_proxy``/``ALL_PROXY``; None
    when ``no_proxy``/``NO_PROXY`` names the URL's host (``*``, hosts, ``.domain``s,
    ``host:port``s).
    """
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    if _bypassed((parts.hostname or "").lower(), parts.port, proxies.get("no", "")):
        return None
    return proxy
