"""Proxies: with one configured (``proxy=`` or the environment), every request of the Bot goes
through it on the ``aiohttp`` transport, polling included; ``NO_PROXY`` is respected.

The proxy is a real forward proxy on loopback (absolute-URI requests and CONNECT tunnels)
that records what it carried.
"""

from __future__ import annotations

import pytest
from loopback import forward_proxy, make_tls

from tgrunner import errors
from tgrunner.client.bot import Bot
from tgrunner.client.transports import proxy_from_env
from tgrunner.client.transports.aiohttp import AiohttpTransport
from tgrunner.client.transports.fast import HTTPClient
from tgrunner.testing import FakeTelegram

TG = "https://api.telegram.org"
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARS, "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_a_given_proxy_carries_every_call(tg: FakeTelegram) -> None:
    alice = tg.user("Alice")
    alice.send("hello")
    async with forward_proxy() as proxy, Bot(tg.token, api_url=tg.api_url, proxy=proxy.url) as bot:
        assert isinstance(bot.transport, AiohttpTransport)
        assert bot.proxy == proxy.url
        await bot.get_me()
        updates = await bot.get_updates(timeout=0)
        await bot.send_message(alice.chat.id, "hi")
    assert [u["message"]["text"] for u in updates] == ["hello"]
    base = f"POST {tg.api_url}/bot{tg.token}"
    assert proxy.requests == [f"{base}/getMe", f"{base}/getUpdates", f"{base}/sendMessage"]


async def test_the_environment_proxy_tunnels_https(monkeypatch: pytest.MonkeyPatch) -> None:
    tls = make_tls()
    async with FakeTelegram(ssl=tls.server) as tg, forward_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with Bot(tg.token, api_url=tg.api_url, ssl_context=tls.client) as bot:
            assert bot.proxy == proxy.url
            assert (await bot.get_me())["id"] == bot.id
            await bot.get_updates(timeout=0)
        assert proxy.tunnels == [f"127.0.0.1:{tg.port}"]
        assert len(tg.calls("getMe")) == len(tg.calls("getUpdates")) == 1


async def test_all_proxy_applies_and_no_proxy_bypasses(
    tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with forward_proxy() as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        async with Bot(tg.token, api_url=tg.api_url) as bot:
            await bot.get_me()
        assert len(proxy.requests) == 1
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        async with Bot(tg.token, api_url=tg.api_url) as bot:
            assert bot.proxy is None and isinstance(bot.transport, HTTPClient)
            await bot.get_me()
        assert len(proxy.requests) == 1


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, TG, None),
        ({"HTTPS_PROXY": "http://p:1"}, TG, "http://p:1"),
        ({"https_proxy": "http://p:1"}, TG, "http://p:1"),
        ({"ALL_PROXY": "http://a:1"}, TG, "http://a:1"),
        ({"all_proxy": "http://a:1", "HTTPS_PROXY": "http://p:1"}, "https://x.org", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1"}, "http://127.0.0.1:81", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, TG, None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".telegram.org"}, TG, None),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "other.org"}, TG, "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "x.org:8443"}, "https://x.org:443", "http://p:1"),
    ],
)  # fmt: skip
def test_proxy_from_env(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert proxy_from_env(url) == expected


async def test_an_unreachable_proxy_is_a_network_error() -> None:
    async with Bot("1:AAtest", api_url="http://127.0.0.1:9", proxy="http://127.0.0.1:9") as bot:
        with pytest.raises(errors.NetworkError, match="getMe: cannot reach"):
            await bot.get_me()


def test_a_socks_proxy_is_refused_with_a_clear_message() -> None:
    with pytest.raises(errors.ConfigError, match="SOCKS"):
        Bot("1:AAtest", proxy="socks5://127.0.0.1:1080")
