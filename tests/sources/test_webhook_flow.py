"""The webhook source over real HTTP against FakeTelegram: setWebhook, 200 only after confirm,
FakeTelegram's own delivery end to end, dedup, backlog, close, start-up errors and TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from webhook_support import (
    SECRET,
    Driver,
    exchange,
    read_answer,
    request,
    serving,
    update,
    yield_until,
)

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.protocols import Source
from tgrunner.sources.webhook import WebhookOptions, WebhookSource
from tgrunner.testing import FakeTelegram, WebhookRetry


@pytest.fixture
async def tg() -> Any:
    async with FakeTelegram(webhook_retry=WebhookRetry(base=0.01, cap=0.05)) as fake:
        yield fake


async def info(tg: FakeTelegram) -> dict[str, Any]:
    bot = Bot(token=tg.token, api_url=tg.api_url)
    try:
        result: dict[str, Any] = await bot.call("getWebhookInfo")
        return result
    finally:
        await bot.close()


@pytest.mark.timeout(20)
async def test_start_sets_the_webhook_with_every_option(tg: FakeTelegram) -> None:
    async with serving(
        tg,
        set_webhook=True,
        secret=SECRET,
        max_connections=7,
        allowed_updates=("message", "callback_query"),
    ) as src:
        as_source: object = src
        assert isinstance(as_source, Source)
        assert src.port > 0
        url = f"http://127.0.0.1:{src.port}/hook"
        assert src.webhook_url == url
        assert src.description == f"webhook {url} on 127.0.0.1:{src.port}"
        (call,) = tg.calls("setWebhook")
        assert call.params["url"] == url
        assert call.params["secret_token"] == SECRET
        assert call.params["max_connections"] == 7
        assert call.params["allowed_updates"] == ["message", "callback_query"]
        hook = await info(tg)
        assert hook["url"] == url
        assert hook["max_connections"] == 7
    assert not tg.calls("deleteWebhook")  # delete_on_stop is off by default


@pytest.mark.timeout(20)
async def test_delete_on_stop_deletes_the_webhook(tg: FakeTelegram) -> None:
    async with serving(tg, set_webhook=True, delete_on_stop=True):
        pass
    assert len(tg.calls("deleteWebhook")) == 1
    assert (await info(tg))["url"] == ""


@pytest.mark.timeout(20)
async def test_the_200_comes_only_after_confirm(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET) as src:
        post = asyncio.create_task(exchange(src.port, request(update(5))))
        batch = await asyncio.wait_for(src.next_batch(100), 5)
        assert batch == [update(5)]
        assert src.pending == 1
        # The request still waits: nothing answers it before the update is durable.
        done, _ = await asyncio.wait({post}, timeout=0.05)
        assert not done
        src.confirm(0)
        answer = await post
        assert (answer.status, answer.body) == (200, b"")
        assert src.pending == 0
        assert src.responses == {200: 1}


@pytest.mark.timeout(20)
async def test_one_batch_gathers_what_arrived_meanwhile(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET) as src:
        posts = [asyncio.create_task(exchange(src.port, request(update(i)))) for i in range(20)]
        first = await src.next_batch(100)
        src.confirm(0)
        seen = [u["update_id"] for u in first]
        # Requests that arrived while the first batch was "journaled" come in one more batch.
        while len(seen) < 20:
            batch = await src.next_batch(3)
            assert 1 <= len(batch) <= 3
            seen += [u["update_id"] for u in batch]
            src.confirm(0)
        assert sorted(seen) == list(range(20))
        assert {(await p).status for p in posts} == {200}


@pytest.mark.timeout(30)
async def test_fake_telegram_delivers_end_to_end_in_chat_order(tg: FakeTelegram) -> None:
    async with serving(tg, set_webhook=True, secret=SECRET) as src, Driver(src) as drv:
        alice, bob = tg.user("Alice"), tg.user("Bob")
        for i in range(5):
            alice.send(f"a{i}")
            bob.send(f"b{i}")
        await drv.until(10, timeout=10)
        await tg.wait_for(lambda: tg.pending_updates == 0, timeout=10)
        hook = await info(tg)
        assert hook["pending_update_count"] == 0
        assert "last_error_message" not in hook
        by_chat: dict[str, list[str]] = {}
        for u in drv.updates:
            msg = u["message"]
            by_chat.setdefault(msg["from"]["first_name"], []).append(msg["text"])
        assert by_chat == {"Alice": [f"a{i}" for i in range(5)], "Bob": [f"b{i}" for i in range(5)]}
        assert len(set(drv.ids)) == 10


@pytest.mark.timeout(20)
async def test_a_resent_update_joins_the_waiting_one(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET) as src, Driver(src) as drv:
        drv.hold.clear()
        first = asyncio.create_task(exchange(src.port, request(update(9))))
        await drv.until(1)
        again = asyncio.create_task(exchange(src.port, request(update(9))))
        # The resend is counted as received and waits with the first.
        await yield_until(lambda: src._pending[9].requests == 2)
        assert not first.done() and not again.done()
        drv.hold.set()
        assert (await first).status == (await again).status == 200
        # Resent after our 200: answered at once, never handed on again.
        late = await exchange(src.port, request(update(9)))
        assert late.status == 200
        assert drv.ids == [9]


@pytest.mark.timeout(20)
async def test_an_unknown_update_kind_is_accepted(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET) as src, Driver(src) as drv:
        odd = {"update_id": 3, "kind_from_the_future": {"x": [1, 2]}}
        assert (await exchange(src.port, request(odd))).status == 200
        assert drv.updates == [odd]


@pytest.mark.timeout(20)
async def test_a_high_backlog_answers_429_with_retry_after(tg: FakeTelegram) -> None:
    backlog = 11

    async with (
        serving(tg, secret=SECRET, backlog=lambda: backlog, max_backlog=10, retry_after=3) as src,
        Driver(src) as drv,
    ):
        answer = await exchange(src.port, request(update(1)))
        assert answer.status == 429
        assert answer.headers["retry-after"] == "3"
        assert src.pending == 0
        backlog = 10
        assert (await exchange(src.port, request(update(1)))).status == 200
        assert drv.ids == [1]


@pytest.mark.timeout(20)
async def test_close_answers_every_waiting_request_503(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET) as src:
        returned = asyncio.create_task(exchange(src.port, request(update(1))))
        assert [u["update_id"] for u in await src.next_batch(100)] == [1]
        queued = asyncio.create_task(exchange(src.port, request(update(2))))
        await yield_until(lambda: src.pending == 2)
        await src.close()
        assert (await returned).status == 503
        assert (await queued).status == 503
        await src.close()  # twice is fine
        # After close, next_batch waits until the runner cancels it.
        waiting = asyncio.create_task(src.next_batch(100))
        done, _ = await asyncio.wait({waiting}, timeout=0.05)
        assert not done
        waiting.cancel()
        with pytest.raises(ConnectionError):
            await exchange(src.port, request(update(3)))


@pytest.mark.timeout(20)
async def test_a_kept_alive_connection_serves_many_updates(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET) as src, Driver(src) as drv:
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        try:
            for i in range(5):
                writer.write(request(update(i)))
                assert (await read_answer(reader)).status == 200
        finally:
            writer.close()
            await writer.wait_closed()
        assert drv.ids == list(range(5))


@pytest.mark.timeout(20)
async def test_a_port_in_use_is_a_config_error(tg: FakeTelegram) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bot = Bot(token=tg.token, api_url=tg.api_url)
        opts = WebhookOptions(url="https://x.example/h", listen=f"127.0.0.1:{port}")
        src = WebhookSource(bot, opts)
        with pytest.raises(ConfigError, match="the port is in use"):
            await src.start()
        await src.close()
        await bot.close()
    assert not tg.calls("setWebhook")


@pytest.mark.timeout(20)
async def test_a_refused_set_webhook_is_a_config_error_and_closes_the_port(
    tg: FakeTelegram,
) -> None:
    bot = Bot(token=tg.token, api_url=tg.api_url)
    # FakeTelegram refuses URLs shorter than 10 characters, as a bad webhook.
    src = WebhookSource(bot, WebhookOptions(url="http://a/", listen="127.0.0.1:0"))
    with pytest.raises(ConfigError, match="refused setWebhook"):
        await src.start()
    with pytest.raises(ConnectionError):
        await exchange(src.port, request(update(1)))
    await src.close()
    await bot.close()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return cert_path, key_path, client


@pytest.mark.timeout(20)
async def test_serves_https_with_a_cert_and_key(
    tg: FakeTelegram, tls_files: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert, key, client = tls_files
    async with (
        serving(
            tg, secret=SECRET, tls_cert=cert, tls_key=key, url="https://127.0.0.1:0/hook"
        ) as src,
        Driver(src) as drv,
        aiohttp.ClientSession() as session,
    ):
        async with session.post(
            f"https://127.0.0.1:{src.port}/hook",
            json=update(4),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            ssl=client,
        ) as response:
            assert response.status == 200
        assert drv.ids == [4]


@pytest.mark.timeout(20)
async def test_a_bad_cert_is_a_config_error(tg: FakeTelegram, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    bot = Bot(token=tg.token, api_url=tg.api_url)
    opts = WebhookOptions(
        url="https://x.example/h", listen="127.0.0.1:0", tls_cert=junk, tls_key=junk
    )
    src = WebhookSource(bot, opts)
    with pytest.raises(ConfigError, match="cannot load the webhook's TLS certificate"):
        await src.start()
    await src.close()
    await bot.close()


@pytest.mark.timeout(20)
async def test_direct_mode_answers_once_the_update_was_handled(tg: FakeTelegram) -> None:
    async with serving(tg, secret=SECRET, mode="direct") as src:
        first = asyncio.create_task(exchange(src.port, request(update(5))))
        second = asyncio.create_task(exchange(src.port, request(update(6, chat=2))))
        taken: list[dict[str, Any]] = []
        while len(taken) < 2:
            taken += await asyncio.wait_for(src.next_batch(100), 5)
        src.confirm(0)  # journaled: in direct mode that is not yet the answer
        done, _ = await asyncio.wait({first, second}, timeout=0.05)
        assert not done
        src.finished(6)
        assert (await second).status == 200
        assert not first.done()
        src.finished(6)  # twice, or an unknown id: nothing
        src.finished(99)
    # close() answered the one still being handled 503: Telegram sends it again later.
    assert (await first).status == 503
    assert src.responses == {200: 1, 503: 1}
