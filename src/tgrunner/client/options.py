"""The client's options: which transport, through which proxy, with what timeout.

Nested in :class:`tgrunner.settings.Settings` as ``client``; the runner builds its Bot from
them (``TGRUNNER_TRANSPORT``, ``TGRUNNER_PROXY``, ``--transport``, ``--proxy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from tgrunner.client.transports import check_name
from tgrunner.errors import ConfigError

__all__ = ["ClientOptions"]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How the Bot API client reaches the server.

    - ``transport``: ``"fast"`` (default, the httptools keep-alive pool) or ``"aiohttp"``.
      With a proxy, ``aiohttp`` is used whatever this says.
    - ``proxy``: an ``http://`` or ``https://`` proxy URL, default None: the environment's
      (``HTTPS_PROXY``/``ALL_PROXY``, minus ``NO_PROXY``), else none.
    - ``timeout``: seconds to wait for an answer, default 60; ``getUpdates`` adds its long-poll
      timeout to it.
    """

    transport: str = "fast"
    proxy: str | None = None
    timeout: float = 60.0

    def __post_init__(self) -> None:
        check_name(self.transport)
        if self.proxy is not None:
            parts = urlsplit(self.proxy)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"The proxy {self.proxy!r} is not an http://host:port or https://host:port "
                    "URL; SOCKS proxies are not supported."
                )
        if not self.timeout > 0:
            raise ConfigError(f"The client timeout must be more than 0 seconds, got {self.timeout}")
