"""ClientOptions: validated on construction, read from ``TGRUNNER_TRANSPORT`` and
``TGRUNNER_PROXY`` and the ``run`` command's flags, and used by the runner for its Bot, whose
polling and replies then all go through the configured proxy."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from loopback import forward_proxy

from tgrunner.cli import _parser
from tgrunner.client import ClientOptions
from tgrunner.client.transports.aiohttp import AiohttpTransport
from tgrunner.errors import ConfigError
from tgrunner.frontends.native.router import Context, Router
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram


def test_defaults() -> None:
    assert ClientOptions() == ClientOptions(transport="fast", proxy=None, timeout=60.0)
    assert Settings().client == ClientOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClientOptions().transport = "aiohttp"  # type: ignore[misc]


def test_an_unknown_transport_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="'httpx'; choose one of: fast, aiohttp"):
        ClientOptions(transport="httpx")


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://"])
def test_a_bad_proxy_is_refused(proxy: str) -> None:
    with pytest.raises(ConfigError, match="proxy"):
        ClientOptions(proxy=proxy)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
def test_a_bad_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        ClientOptions(timeout=timeout)


def test_from_env() -> None:
    env = {"TGRUNNER_TRANSPORT": "aiohttp", "TGRUNNER_PROXY": "http://127.0.0.1:3128"}
    assert Settings.from_env(env).client == ClientOptions("aiohttp", "http://127.0.0.1:3128")
    assert Settings.from_env({"TGRUNNER_PROXY": ""}).client.proxy is None
    with pytest.raises(ConfigError, match="TGRUNNER_TRANSPORT='curl' must be one of: fast"):
        Settings.from_env({"TGRUNNER_TRANSPORT": "curl"})
    with pytest.raises(ConfigError, match=r"TGRUNNER_PROXY.*TGRUNNER_TRANSPORT"):
        Settings.from_env({"TGRUNNER_PROXIES": "x"})


def test_run_flags() -> None:
    args = _parser("run").parse_args(
        ["run", "bot:router", "--proxy", "http://127.0.0.1:3128", "--transport", "aiohttp"]
    )
    assert (args.proxy, args.transport) == ("http://127.0.0.1:3128", "aiohttp")
    with pytest.raises(SystemExit):
        _parser("run").parse_args(["run", "bot:router", "--transport", "httpx"])


async def test_the_runner_polls_and_replies_through_the_proxy(tg: FakeTelegram) -> None:
    router = Router()

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "")

    async with forward_proxy() as proxy:
        settings = Settings(
            polling=PollingOptions(timeout=1), grace=5.0, client=ClientOptions(proxy=proxy.url)
        )
        runner = Runner(router, token=tg.token, api_url=tg.api_url, settings=settings)
        assert isinstance(runner.bot.transport, AiohttpTransport)
        task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
        alice = tg.user("Alice")
        alice.send("one")
        alice.send("two")
        await tg.wait_for(lambda: len(tg.calls("sendMessage")) >= 2, timeout=20)
        runner.stop()
        assert await asyncio.wait_for(task, 10) == 0
    assert [m["text"] for m in tg.replies(alice)] == ["one", "two"]
    carried = [r.rpartition("/")[2] for r in proxy.requests]
    assert carried.count("sendMessage") == 2
    # Everything the fake answered came through the proxy; a long poll cut short by the stop
    # reached the proxy but was never answered by the fake.
    for method in {r.method for r in tg.requests}:
        assert carried.count(method) >= len(tg.calls(method)), method
    assert carried.count("getUpdates") <= len(tg.calls("getUpdates")) + 1
