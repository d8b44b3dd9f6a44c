"""ObserveServer: /metrics, /readyz, and /healthz answering 503 while the bot's loop is blocked.

Real HTTP over loopback; the blocked-loop test probes from another thread, as a kubelet would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tgrunner.errors import ConfigError
from tgrunner.observability import Metrics, ObserveServer, parse_listen


def get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """A blocking GET from a thread that is not the event loop's: (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.mark.timeout(20)
async def test_metrics_are_served_in_the_text_format(session: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.handled("ok", 0.01, 0.0)
    async with ObserveServer(metrics, listen="127.0.0.1:0") as server:
        assert server.port > 0
        async with session.get(f"{server.url}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            text = await response.text()
        names = {family.name for family in text_string_to_metric_families(text)}
        assert {"tgrunner_updates_handled", "tgrunner_build_info"} <= names
        accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with session.get(f"{server.url}/metrics", headers=accept) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await response.text()).endswith("# EOF\n")


@pytest.mark.timeout(30)
async def test_healthz_fails_within_2_s_while_the_loop_is_blocked() -> None:
    async with ObserveServer(Metrics(), listen="127.0.0.1:0") as server:
        url = f"{server.url}/healthz"
        assert (await asyncio.to_thread(get, url))[0] == 200
        blocked, unblocked = threading.Event(), threading.Event()
        seen: dict[str, Any] = {}

        def probe() -> None:
            assert blocked.wait(10)
            start = time.monotonic()
            # Probing at an interval is what a health checker does; each answer is awaited.
            while "unhealthy" not in seen and time.monotonic() - start < 2.5:
                status, body = get(url)
                if status == 503:
                    seen["unhealthy"] = (time.monotonic() - start, unblocked.is_set(), body)
                time.sleep(0.05)
            assert unblocked.wait(10)
            while "healthy" not in seen and time.monotonic() - start < 10:
                if get(url)[0] == 200:
                    seen["healthy"] = True
                time.sleep(0.05)

        def block() -> None:
            blocked.set()
            time.sleep(3)  # a handler that blocks the event loop
            unblocked.set()

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        asyncio.get_running_loop().call_soon(block)
        await asyncio.to_thread(prober.join, 20)
    after, still_blocked, body = seen["unhealthy"]
    assert after < 2.0 and still_blocked is False
    assert b"event loop has not run" in body
    assert seen.get("healthy") is True


@pytest.mark.timeout(20)
async def test_metrics_and_readyz_answer_503_when_the_loop_does_not() -> None:
    async with ObserveServer(Metrics(), listen="127.0.0.1:0", loop_timeout=0.5) as server:
        blocked = threading.Event()

        def block() -> None:
            blocked.set()
            time.sleep(1.5)

        asyncio.get_running_loop().call_soon(block)

        def probe() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            assert blocked.wait(10)
            return get(f"{server.url}/metrics", 5), get(f"{server.url}/readyz", 5)

        (metrics_status, _), (ready_status, ready_body) = await asyncio.to_thread(probe)
    assert metrics_status == 503 and ready_status == 503
    assert orjson.loads(ready_body)["failing"] == ["event_loop"]


@pytest.mark.timeout(20)
async def test_readyz_reports_the_failing_checks(session: aiohttp.ClientSession) -> None:
    checks = {"source": True, "journal": True, "backends": True}

    async def ready() -> Mapping[str, bool]:
        await asyncio.sleep(0)  # an awaitable result is awaited on the bot's loop
        return checks

    async with ObserveServer(Metrics(), listen="127.0.0.1:0", ready=ready) as server:
        async with session.get(f"{server.url}/readyz") as response:
            assert response.status == 200
            assert await response.json() == {"ready": True, "checks": checks}
        checks["journal"] = False
        checks["backends"] = False
        async with session.get(f"{server.url}/readyz") as response:
            assert response.status == 503
            body = await response.json()
            assert body["ready"] is False and body["failing"] == ["journal", "backends"]


@pytest.mark.timeout(20)
async def test_readyz_fails_when_the_checks_raise(session: aiohttp.ClientSession) -> None:
    def ready() -> Mapping[str, bool]:
        raise RuntimeError("journal closed")

    async with (
        ObserveServer(Metrics(), listen="127.0.0.1:0", ready=ready) as server,
        session.get(f"{server.url}/readyz") as response,
    ):
        assert response.status == 503
        body = await response.json()
    assert body["failing"] == ["ready"] and body["error"] == "RuntimeError: journal closed"


@pytest.mark.timeout(20)
async def test_no_checks_means_ready_and_healthz_is_json(session: aiohttp.ClientSession) -> None:
    async with ObserveServer(Metrics(), listen="127.0.0.1:0") as server:
        async with session.get(f"{server.url}/readyz") as response:
            assert response.status == 200 and (await response.json())["ready"] is True
        async with session.get(f"{server.url}/healthz") as response:
            assert response.status == 200 and (await response.json())["ok"] is True
        async with session.get(f"{server.url}/nothing") as response:
            assert response.status == 404


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "listen", ["9090", "localhost", "127.0.0.1:", "127.0.0.1:99999", "::1:9090", "a b:1", ""]
)
def test_a_bad_listen_address_is_a_config_error(listen: str) -> None:
    with pytest.raises(ConfigError, match="is not host:port") as caught:
        ObserveServer(Metrics(), listen=listen)
    assert "\n" not in str(caught.value)


@pytest.mark.timeout(10)
def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9090") == ("127.0.0.1", 9090)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen(":9100") == ("0.0.0.0", 9100)
    assert parse_listen("metrics.local:80") == ("metrics.local", 80)


@pytest.mark.timeout(20)
async def test_a_port_in_use_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ObserveServer(Metrics(), listen=f"127.0.0.1:{port}")
        with pytest.raises(ConfigError, match=f"port {port} is in use") as caught:
            await server.start()
        assert "\n" not in str(caught.value)
        await server.close()  # after a failed start too


@pytest.mark.timeout(20)
async def test_close_is_safe_twice_and_before_start() -> None:
    never = ObserveServer(Metrics(), listen="127.0.0.1:0")
    await never.close()
    server = ObserveServer(Metrics(), listen="127.0.0.1:0")
    await server.start()
    url = f"{server.url}/healthz"
    assert (await asyncio.to_thread(get, url))[0] == 200
    await server.close()
    await server.close()
    with pytest.raises(urllib.error.URLError, match="refused"):
        await asyncio.to_thread(get, url)
