"""``tgrunner run --metrics HOST:PORT``: real bots against FakeTelegram, scraped over HTTP.

Counts are checked against what was sent: updates received by source and kind, handled by
outcome (ok, error, timeout), Bot API calls by method, webhook answers by code; histograms
count each handled update; /healthz and /readyz answer; no chat or user id is a label. With
--workers 2 the API calls come from the workers' snapshots, and a SIGKILLed worker leaves
every counter monotonic and counts one restart of its slot."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from cli_support import in_subprocess
from processes import BotProcess, end_started_bots, start_bot
from replies import replied, send_load
from tgrunner.testing import FakeTelegram

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

BOTS = Path(__file__).parents[1] / "bots"
METRICS = ("--metrics", "127.0.0.1:0")
HOOK = ("--webhook-url", "http://127.0.0.1:0/tg/hook", "--listen", "127.0.0.1:0")
_LINE = re.compile(r"metrics on (http://127\.0\.0\.1:\d+)/metrics")

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
async def _end_our_bots() -> None:  # type: ignore[misc]
    yield
    await end_started_bots()


async def _base_url(bot: BotProcess) -> str:
    log = await bot.wait_for_line(_LINE, timeout=30)
    match = _LINE.search(log)
    assert match is not None
    return match.group(1)


async def scrape(url: str) -> Samples:
    """Every sample of ``url``/metrics, by name and sorted labels."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(url: str, ok: Callable[[Samples], bool], timeout: float = 20) -> Samples:
    """Scrape until ``ok(samples)``: a handler's end is counted just after its reply."""
    async with asyncio.timeout(timeout):
        while True:
            samples = await scrape(url)
            if ok(samples):
                return samples
            await asyncio.sleep(0.05)


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


def no_ids(samples: Samples, tg: FakeTelegram, sent: dict[int, list[str]]) -> None:
    ids = {str(chat) for chat in sent} | {str(tg.token.partition(":")[0])}
    labels = {v for _, pairs in samples for _, v in pairs}
    assert not labels & ids, labels & ids


def handled_ok(n: int) -> Callable[[Samples], bool]:
    return lambda s: value(s, "tgrunner_updates_handled_total", outcome="ok") >= n


@pytest.mark.timeout(90)
async def test_metrics_of_a_polling_bot(tg: FakeTelegram) -> None:
    sent = send_load(tg, chats=5, per_chat=10)
    bot = await start_bot(tg, "echo_bot:router", *METRICS, cwd=BOTS)
    url = await _base_url(bot)
    await tg.wait_for(lambda: replied(tg) >= 50, timeout=30)
    s = await until(url, handled_ok(50))
    received = "tgrunner_updates_received_total"
    assert value(s, received, source="polling", kind="message") == 50
    assert value(s, "tgrunner_updates_handled_total", outcome="ok") == 50
    assert value(s, "tgrunner_updates_handled_total", outcome="error") == 0
    assert value(s, "tgrunner_api_calls_total", method="sendMessage", status="ok") >= 50
    assert value(s, "tgrunner_api_calls_total", method="getUpdates", status="ok") >= 1
    assert value(s, "tgrunner_handle_duration_seconds_count") == 50
    assert value(s, "tgrunner_lane_wait_seconds_count") == 50
    assert value(s, "tgrunner_api_call_duration_seconds_count", method="sendMessage") >= 50
    assert [k for k in s if k[0] == "tgrunner_build_info"], s
    for gauge in ("tgrunner_updates_in_flight", "tgrunner_lanes", "tgrunner_backlog"):
        assert (gauge, ()) in s, gauge
    assert ("tgrunner_journal_pending", ()) in s
    assert value(s, "tgrunner_journal_quarantined") == 0
    no_ids(s, tg, sent)
    assert (await get_json(f"{url}/healthz"))[0] == 200
    status, body = await get_json(f"{url}/readyz")
    assert status == 200, body
    assert body["checks"] == {"source": True, "journal": True, "jobs": True, "state": True}
    err = await bot.stop()
    assert err.count("metrics on http://127.0.0.1:") == 1


@pytest.mark.timeout(120)
async def test_worker_metrics_are_aggregated_and_stay_monotonic_over_a_kill(
    tg: FakeTelegram,
) -> None:
    sent = send_load(tg, chats=6, per_chat=5)
    bot = await start_bot(tg, "worker_bot:router", *METRICS, "--workers", "2", cwd=BOTS)
    url = await _base_url(bot)
    await tg.wait_for(lambda: replied(tg) >= 30, timeout=30)
    api = "tgrunner_api_calls_total"
    # The workers' sendMessage calls reach /metrics through their snapshots (about 1 s).
    before = await until(
        url,
        lambda s: handled_ok(30)(s) and value(s, api, method="sendMessage", status="ok") >= 30,
    )
    status, body = await get_json(f"{url}/readyz")
    assert status == 200 and body["checks"] == {
        "source": True,
        "journal": True,
        "workers": True,
        "jobs": True,
        "state": True,
    }
    # Find a worker's pid, kill it, and let its replacement serve.
    alice = tg.user("Alice")
    alice.send("pid")
    reply = (await tg.wait_for_replies(alice, 1, timeout=20))[0]
    pid = int(reply["text"])
    os.kill(pid, signal.SIGKILL)
    restarts = "tgrunner_worker_restarts_total"
    after = await until(url, lambda s: sum(v for k, v in s.items() if k[0] == restarts) >= 1)
    alice.send("pid")
    await tg.wait_for_replies(alice, 2, timeout=30)
    # The new process's reply reaches /metrics with its next snapshot; the killed one's
    # calls after its last snapshot are lost (at most one interval, as aggregate.py says).
    after = await until(
        url,
        lambda s: handled_ok(32)(s) and value(s, api, method="sendMessage", status="ok") >= 31,
    )
    for key, old in before.items():
        if key[0].endswith(("_total", "_count", "_sum", "_bucket")):
            assert after.get(key, 0.0) >= old, (key, old, after.get(key))
    slots = {dict(k[1])["slot"]: v for k, v in after.items() if k[0] == restarts}
    assert sorted(slots.values()) == [1.0], slots
    no_ids(after, tg, sent)
    await bot.stop()


@pytest.mark.timeout(90)
async def test_metrics_of_a_webhook_bot(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "echo_bot:router", *HOOK, *METRICS, cwd=BOTS, webhook=True)
    url = await _base_url(bot)
    sent = send_load(tg, chats=4, per_chat=5)
    await tg.wait_for(lambda: replied(tg) >= 20, timeout=30)
    await tg.wait_for(lambda: tg.pending_updates == 0, timeout=10)
    s = await until(url, handled_ok(20))
    assert value(s, "tgrunner_updates_received_total", source="webhook", kind="message") == 20
    assert value(s, "tgrunner_updates_received_total", source="polling", kind="message") == 0
    assert value(s, "tgrunner_webhook_requests_total", code="200") == 20
    no_ids(s, tg, sent)
    await bot.stop()


FRAMEWORKS = {
    "aiogram": "aiogram_quick:dp",
    "ptb": "ptb_echobot:main",
    "aiogram --workers 2": "aiogram_quick:dp",
    "ptb --workers 2": "ptb_echobot:main",
}


@pytest.mark.parametrize("kind", FRAMEWORKS)
@pytest.mark.timeout(120)
async def test_framework_bots_count_their_updates(tg: FakeTelegram, kind: str) -> None:
    extra = ("--workers", "2") if "workers" in kind else ()
    env = {"BOT_TOKEN": tg.token}
    sent = send_load(tg, chats=4, per_chat=5)
    bot = await start_bot(tg, FRAMEWORKS[kind], *METRICS, *extra, cwd=BOTS, env=env)
    url = await _base_url(bot)
    await tg.wait_for(lambda: replied(tg) >= 20, timeout=60)
    s = await until(url, handled_ok(20))
    assert value(s, "tgrunner_updates_handled_total", outcome="ok") == 20
    assert value(s, "tgrunner_updates_received_total", source="polling", kind="message") == 20
    build = [dict(k[1]) for k in s if k[0] == "tgrunner_build_info"]
    assert [b["frontend"] for b in build] == [kind.split()[0]], build
    # The replies go through the framework's own session (in the workers, with --workers).
    calls = "tgrunner_api_calls_total"
    s = await until(url, lambda s: value(s, calls, method="sendMessage", status="ok") >= 20)
    no_ids(s, tg, sent)
    await bot.stop()


@pytest.mark.timeout(90)
async def test_errors_and_timeouts_are_counted(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "worker_bot:router", *METRICS, "--handler-timeout", "0.2", cwd=BOTS)
    url = await _base_url(bot)
    alice, bob = tg.user("Alice"), tg.user("Bob")
    for _ in range(3):
        alice.send("raise")
    bob.send("sleep")
    bob.send("sleep")
    alice.send("hi")
    handled = "tgrunner_updates_handled_total"
    s = await until(
        url,
        lambda s: (
            value(s, handled, outcome="error") == 3 and value(s, handled, outcome="timeout") == 2
        ),
    )
    s = await until(url, handled_ok(1))
    assert value(s, "tgrunner_handle_duration_seconds_count") == 6
    assert value(s, "tgrunner_updates_received_total", source="polling", kind="message") == 6
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert err.count("ValueError: boom") == 3  # the handler's own error, logged


@pytest.mark.timeout(60)
async def test_a_port_in_use_or_no_prometheus_client_is_one_line(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    run = ("run", "echo_bot:router", "--api-url", tg.api_url, "--token", tg.token)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await in_subprocess(*run, "--metrics", f"127.0.0.1:{port}")
    assert code == 2 and "Traceback" not in err, err
    assert f"port {port} is in use" in err.strip().splitlines()[-1], err
    # An installation without prometheus_client (a package that fails to import hides it).
    (tmp_path / "prometheus_client").mkdir()
    (tmp_path / "prometheus_client" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'prometheus_client'\")\n"
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    code, _, err = await in_subprocess(*run, "--metrics", "127.0.0.1:0", env={"PYTHONPATH": path})
    assert code == 2 and "Traceback" not in err, err
    assert "pip install 'tgrunner[metrics]'" in err.strip().splitlines()[-1], err


@pytest.mark.parametrize("mode", ["journal", "direct", "direct --workers 2"])
@pytest.mark.timeout(120)
async def test_a_returned_method_rides_in_a_direct_webhook_answer(
    tg: FakeTelegram, mode: str
) -> None:
    """aiogram's convention: a handler returns its reply. In direct mode it is the webhook's
    answer (Telegram sends it; the bot makes no request); otherwise the bot sends it."""
    extra = ["--webhook-mode", mode.split()[0], *mode.split()[1:]]
    env = {"BOT_TOKEN": tg.token}
    sent = send_load(tg, chats=5, per_chat=4)
    bot = await start_bot(
        tg, "aiogram_answer_bot:dp", *HOOK, *METRICS, *extra, cwd=BOTS, env=env, webhook=True
    )
    url = await _base_url(bot)
    await tg.wait_for(lambda: replied(tg) >= 20, timeout=60)
    s = await until(url, handled_ok(20))
    texts = {(int(r.params["chat_id"]), r.params["text"]) for r in tg.calls("sendMessage")}
    assert texts == {(chat, t) for chat, ts in sent.items() for t in ts}
    direct = mode.startswith("direct")
    assert tg.answer_methods == (["sendMessage"] * 20 if direct else []), tg.answer_methods
    if not mode.endswith("--workers 2"):  # there the workers' counts come a second later
        calls = value(s, "tgrunner_api_calls_total", method="sendMessage", status="ok")
        assert calls == (0 if direct else 20), calls
    await bot.stop()
