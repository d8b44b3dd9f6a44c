"""WebhookOptions: defaults, and a ConfigError that says what to pass for each bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tgrunner.errors import ConfigError
from tgrunner.sources.webhook import TELEGRAM_IPS, WebhookOptions
from tgrunner.sources.webhook_options import parse_listen

URL = "https://bot.example.com/hook"


@pytest.mark.timeout(5)
def test_defaults() -> None:
    opts = WebhookOptions(url=URL)
    assert (opts.host, opts.port, opts.path) == ("0.0.0.0", 8443, "/hook")
    assert opts.max_connections == 40 and opts.max_body == 1 << 20
    assert opts.max_backlog == 10_000 and opts.retry_after == 1
    assert opts.header_timeout == opts.body_timeout == 10.0
    assert opts.max_open == 1000 and opts.set_webhook and not opts.delete_on_stop
    assert opts.networks() == ((None), ())
    assert TELEGRAM_IPS == ("149.154.160.0/20", "91.108.4.0/22")
    assert len(WebhookOptions(url=URL, allow_ips=("telegram",)).networks()[0] or ()) == 2
    assert WebhookOptions(url="https://x.example").path == "/"


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:8443", ("::1", 8443)), ("h:80", ("h", 80))],
)
def test_listen_is_parsed(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"url": ""}, "url is required; pass the public URL"),
        ({"url": "ftp://x.example/h"}, "http://) URL; pass"),
        ({"url": "https:///hook"}, "is not an https:// (or, for a local server, http://) URL"),
        ({"url": "https://x.example:99999/h"}, "has a bad port"),
        ({"url": "https://x.example/h#frag"}, "#fragment"),
        ({"listen": "8443"}, "pass host:port, such as 0.0.0.0:8443"),
        ({"listen": ":8443"}, "pass host:port"),
        ({"listen": "0.0.0.0:70000"}, "port 0-65535"),
        ({"listen": "0.0.0.0:http"}, "pass host:port"),
        ({"listen": "::1:8443"}, "put an IPv6 host in brackets"),
        ({"secret": ""}, "1-256 characters of A-Z, a-z, 0-9, _ and -"),
        ({"secret": "x" * 257}, "1-256 characters"),
        ({"secret": "has space"}, "openssl rand -hex 32"),
        ({"max_connections": 0}, "max_connections must be a whole number 1-100"),
        ({"max_connections": 101}, "Telegram allows 1-100"),
        ({"max_connections": 4.5}, "whole number"),
        ({"max_body": 0}, "max_body must be a whole number 1 or more"),
        ({"max_backlog": -1}, "max_backlog must be a whole number 0 or more"),
        ({"retry_after": 0}, "retry_after must be a whole number 1 or more"),
        ({"retry_after": True}, "retry_after must be"),
        ({"max_open": 0}, "max_open must be a whole number 1 or more"),
        ({"header_timeout": 0}, "header_timeout must be a number above 0"),
        ({"body_timeout": -1.0}, "body_timeout must be a number above 0"),
        ({"allowed_updates": "message"}, "not one string"),
        ({"allowed_updates": ("mesage",)}, "did you mean 'message'"),
        ({"allow_ips": ()}, "pass None to allow every address"),
        ({"allow_ips": "telegram"}, "tuple of CIDR strings"),
        ({"allow_ips": ("10.0.0.0/33",)}, "'10.0.0.0/33', which is not an address"),
        ({"trusted_proxies": ("proxy.local",)}, "pass CIDR strings"),
    ],
)
def test_a_bad_value_says_what_to_pass(changes: dict[str, Any], says: str) -> None:
    params: dict[str, Any] = {"url": URL, **changes}
    with pytest.raises(ConfigError, match="webhook") as caught:
        WebhookOptions(**params)
    assert says in str(caught.value)


@pytest.mark.timeout(5)
def test_tls_files_go_together_and_must_exist(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together: pass both"):
        WebhookOptions(url=URL, tls_cert=cert)
    with pytest.raises(ConfigError, match="go together"):
        WebhookOptions(url=URL, tls_key=cert)
    with pytest.raises(ConfigError, match=r"tls_key '.*missing.pem' is not a file; pass a PEM"):
        WebhookOptions(url=URL, tls_cert=cert, tls_key=tmp_path / "missing.pem")
    assert WebhookOptions(url=URL, tls_cert=cert, tls_key=str(cert)).tls_key == str(cert)
