"""Options of the webhook source: :class:`WebhookOptions`, checked when built.

Every invalid value raises :class:`~tgrunner.errors.ConfigError` with a message that says what
to pass instead. Address lists are parsed once here (:meth:`WebhookOptions.networks`), so the
request path only compares addresses.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tgrunner.client.bot import DEFAULT_API_URL
from tgrunner.errors import ConfigError
from tgrunner.sources.polling import check_update_kinds

__all__ = [
    "TELEGRAM_IPS",
    "Network",
    "WebhookOptions",
    "check_webhook_url",
    "parse_listen",
    "parse_networks",
]

TELEGRAM_IPS = ("149.154.160.0/20", "91.108.4.0/22")
"""The networks Telegram sends webhooks from; ``"telegram"`` in ``allow_ips`` means these."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:8443"`` for IPv6) as ``(host, port)``; ConfigError else."""
    hint = "pass host:port, such as 0.0.0.0:8443, 127.0.0.1:0 or [::]:8443"
    if not isinstance(listen, str):
        raise ConfigError(f"webhook listen must be a host:port string, got {listen!r}; {hint}")
    host, sep, port_text = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"webhook listen {listen!r}: put an IPv6 host in brackets; {hint}")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"webhook listen {listen!r} is not host:port (port 0-65535); {hint}")
    return host, int(port_text)


def parse_networks(field: str, values: tuple[str, ...]) -> tuple[Network, ...]:
    """CIDR strings (or ``"telegram"``) as networks; ConfigError naming the bad one."""
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise ConfigError(
            f"webhook {field} is a tuple of CIDR strings such as ('10.0.0.0/8',), not {values!r}"
        )
    networks: list[Network] = []
    for value in values:
        texts = TELEGRAM_IPS if value == "telegram" else (value,)
        for text in texts:
            try:
                networks.append(ipaddress.ip_network(str(text), strict=False))
            except ValueError:
                raise ConfigError(
                    f"webhook {field} has {value!r}, which is not an address or network; pass "
                    "CIDR strings such as '149.154.160.0/20' or '10.1.2.3' (or 'telegram')"
                ) from None
    return tuple(networks)


def _positive(field: str, value: float, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"webhook {field} must be a number above 0, got {value!r}; {example}")


@dataclass(frozen=True, slots=True)
class WebhookOptions:
    """Options of the webhook source.

    - ``url``: the public URL Telegram posts to (required; https for Telegram, http only for a
      local Bot API server or FakeTelegram). Its path is the only path served. A port of 0
      (``http://127.0.0.1:0/hook``) means the port the server bound (for tests).
    - ``listen``: ``host:port`` to bind, default ``"0.0.0.0:8443"``; port 0 picks a free one.
    - ``secret``: the ``X-Telegram-Bot-Api-Secret-Token`` to require, 1–256 characters of
      ``A-Z a-z 0-9 _ -``; default None (no check; then prefer ``allow_ips``).
    - ``max_connections``: what setWebhook asks Telegram for, 1–100, default 40.
    - ``tls_cert`` / ``tls_key``: PEM files to serve HTTPS directly; both or neither, default
      None (plain HTTP behind a TLS-terminating proxy).
    - ``set_webhook``: call setWebhook at start, default True.
    - ``delete_on_stop``: call deleteWebhook on close, default False (Telegram keeps queueing).
    - ``allowed_updates``: kinds for setWebhook; default None keeps Telegram's setting.
    - ``max_body``: largest request body in bytes, default 1 MiB.
    - ``max_backlog``: above this many updates in the runtime's backlog, answer 429, default
      10,000; ``retry_after``: the seconds its ``Retry-After`` header asks for, default 1.
    - ``header_timeout``: seconds a connection may take to send a request's headers (also
      from the first byte of the next request on a kept-alive one), default 10.
    - ``body_timeout``: seconds to receive a request's body, default 10.
    - ``max_open``: most connections open at once; more are closed at once, default 1000.
    - ``allow_ips``: CIDR strings of allowed clients, ``"telegram"`` meaning
      :data:`TELEGRAM_IPS`; default None allows every address.
    - ``trusted_proxies``: CIDR strings of proxies whose ``X-Forwarded-For`` is believed,
      default () (the header is ignored).
    - ``mode``: ``"journal"`` (default): the 200 once the update is in the journal;
      ``"direct"``: once it has been handled (Telegram then sends that chat's next update
      only after the handler ended: fire-and-forget for the handler, slower for the chat).
    """

    url: str
    listen: str = "0.0.0.0:8443"
    secret: str | None = None
    max_connections: int = 40
    tls_cert: str | Path | None = None
    tls_key: str | Path | None = None
    set_webhook: bool = True
    delete_on_stop: bool = False
    allowed_updates: tuple[str, ...] | None = None
    max_body: int = 1 << 20
    max_backlog: int = 10_000
    retry_after: int = 1
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_open: int = 1000
    allow_ips: tuple[str, ...] | None = None
    trusted_proxies: tuple[str, ...] = ()
    mode: str = "journal"

    def __post_init__(self) -> None:
        if self.mode not in ("journal", "direct"):
            raise ConfigError(
                f"webhook mode must be 'journal' (answer once on disk) or 'direct' (answer "
                f"once handled), got {self.mode!r}"
            )
        self._check_url()
        parse_listen(self.listen)
        if self.secret is not None and (
            not isinstance(self.secret, str) or not _SECRET.fullmatch(self.secret)
        ):
            raise ConfigError(
                "webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's "
                "rule); pass one such as the output of `openssl rand -hex 32`, or none to have "
                "one generated"
            )
        self._check_ints()
        _positive("header_timeout", self.header_timeout, "pass seconds such as 10")
        _positive("body_timeout", self.body_timeout, "pass seconds such as 10")
        self._check_tls()
        if self.allowed_updates is not None:
            if isinstance(self.allowed_updates, str):
                raise ConfigError(
                    "webhook allowed_updates is a tuple of update kinds such as ('message',), "
                    "not one string"
                )
            try:
                check_update_kinds(self.allowed_updates)
            except ValueError as exc:
                raise ConfigError(f"webhook allowed_updates {exc}") from None
        if self.allow_ips is not None:
            if not self.allow_ips and isinstance(self.allow_ips, tuple):
                raise ConfigError(
                    "webhook allow_ips is empty, which would refuse everyone; pass None to "
                    "allow every address, or ('telegram',) for Telegram's networks"
                )
            parse_networks("allow_ips", self.allow_ips)
        parse_networks("trusted_proxies", self.trusted_proxies)

    def _check_url(self) -> None:
        hint = "pass the public URL Telegram posts to, such as https://bot.example.com/hook"
        if not isinstance(self.url, str) or not self.url:
            raise ConfigError(f"webhook url is required; {hint}")
        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            raise ConfigError(f"webhook url {self.url!r} has a bad port; {hint}") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(
                f"webhook url {self.url!r} is not an https:// (or, for a local server, "
                f"http://) URL; {hint}"
            )
        if parts.fragment:
            raise ConfigError(f"webhook url {self.url!r} has a #fragment; {hint}")

    def _check_ints(self) -> None:
        checks = (
            ("max_connections", self.max_connections, 1, 100, "Telegram allows 1-100"),
            ("max_body", self.max_body, 1, None, "pass bytes such as 1048576"),
            ("max_backlog", self.max_backlog, 0, None, "pass a count such as 10000"),
            ("retry_after", self.retry_after, 1, None, "pass whole seconds such as 1"),
            ("max_open", self.max_open, 1, None, "pass a count such as 1000"),
        )
        for field, value, low, high, hint in checks:
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low
                or (high is not None and value > high)
            ):
                bounds = f"{low}-{high}" if high is not None else f"{low} or more"
                raise ConfigError(
                    f"webhook {field} must be a whole number {bounds}, got {value!r}; {hint}"
                )

    def _check_tls(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(
                "webhook tls_cert and tls_key go together: pass both PEM files (certificate "
                "chain and private key), or neither to serve plain HTTP behind a proxy"
            )
        for field, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"webhook {field} {str(path)!r} is not a file; pass a PEM file")
        if self.tls_cert is not None and urlsplit(self.url).scheme.lower() != "https":
            raise ConfigError(
                f"webhook tls_cert serves HTTPS, but the url {self.url!r} is not https://: "
                "give the https:// URL Telegram posts to"
            )

    @property
    def host(self) -> str:
        """The host part of ``listen``."""
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port part of ``listen`` (0: any free port)."""
        return parse_listen(self.listen)[1]

    @property
    def path(self) -> str:
        """The one path served: the path of ``url`` (``/`` when it has none)."""
        return urlsplit(self.url).path or "/"

    def networks(self) -> tuple[tuple[Network, ...] | None, tuple[Network, ...]]:
        """``(allowed, trusted proxies)`` parsed; ``allowed`` is None when all are allowed."""
        allowed = None if self.allow_ips is None else parse_networks("allow_ips", self.allow_ips)
        return allowed, parse_networks("trusted_proxies", self.trusted_proxies)


_TELEGRAM_PORTS = (443, 80, 88, 8443)


def check_webhook_url(url: str, api_url: str) -> None:
    """ConfigError unless Telegram can deliver to ``url``: with Telegram's own server
    (``api_url`` is api.telegram.org) it must be https:// on port 443, 80, 88 or 8443; a
    self-hosted server also takes http:// and any port."""
    if urlsplit(api_url).hostname != urlsplit(DEFAULT_API_URL).hostname:
        return
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise ConfigError(
            f"Telegram delivers webhooks only to https:// URLs, not to {url!r}; put the bot "
            "behind TLS (a reverse proxy with a certificate)."
        )
    try:
        port = parts.port or 443
    except ValueError:
        raise ConfigError(f"{url!r} has a port that is not a number.") from None
    if port not in _TELEGRAM_PORTS:
        raise ConfigError(
            f"Telegram delivers webhooks only to ports 443, 80, 88 and 8443, not {port}; "
            "listen on one of them, or forward one to the bot."
        )
