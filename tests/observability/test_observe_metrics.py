"""Metrics: the exposition parses, names follow Prometheus conventions, values move as recorded,
and no label value is ever a chat or user id."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services import Call
from tgrunner.errors import BadAnswer, NetworkError, RetryAfter, TimedOut
from tgrunner.observability import Metrics, api_status
from tgrunner.observability._families import BUCKETS
from tgrunner.testing import FakeTelegram

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: Metrics) -> Samples:
    """Every sample of the text exposition, parsed back by prometheus_client's parser."""
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.timeout(10)
def test_the_exposition_parses_and_names_follow_the_conventions() -> None:
    metrics = Metrics(frontend="ptb")
    metrics.received("webhook", {"update_id": 1, "callback_query": {"id": "q"}})
    metrics.handled("error", 0.2, 0.01)
    metrics.api_call("answerCallbackQuery", "ok", 0.03)
    metrics.webhook_response(200)
    metrics.worker_restart(0)
    metrics.bind_gauges(
        in_flight=lambda: 2,
        lanes=lambda: 1,
        backlog=lambda: 5,
        journal_pending=lambda: 7,
        journal_quarantined=lambda: 0,
    )
    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
    }
    assert set(families) == {
        "tgrunner_updates_received",
        "tgrunner_updates_handled",
        "tgrunner_handle_duration_seconds",
        "tgrunner_lane_wait_seconds",
        "tgrunner_webhook_requests",
        "tgrunner_api_calls",
        "tgrunner_api_call_duration_seconds",
        "tgrunner_worker_restarts",
        "tgrunner_updates_in_flight",
        "tgrunner_lanes",
        "tgrunner_backlog",
        "tgrunner_journal_pending",
        "tgrunner_journal_quarantined",
        "tgrunner_build_info",
    }
    for name, family in families.items():
        assert name.startswith("tgrunner_") and family.documentation
        assert not name.endswith(("_ms", "_milliseconds", "_created"))
        if family.type == "counter":
            assert all(s.name == f"{name}_total" for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
            les = [s.labels["le"] for s in family.samples if s.name.endswith("_bucket")]
            assert les[0] == "0.001" and les[-2] == "60.0" and les[-1] == "+Inf"
    build = families["tgrunner_build_info"].samples[0]
    assert build.value == 1 and build.labels["frontend"] == "ptb" and build.labels["version"]
    assert families["tgrunner_backlog"].samples[0].value == 5


@pytest.mark.timeout(10)
def test_counters_and_histograms_move_as_recorded() -> None:
    metrics = Metrics()
    before = scrape(metrics)
    assert value(before, "tgrunner_updates_handled_total", outcome="timeout") == 0
    assert value(before, "tgrunner_handle_duration_seconds_count") == 0
    for duration in (0.0005, 0.003, 0.003, 45.0, 100.0):
        metrics.handled("ok", duration, lane_wait=0.0)
    metrics.handled("timeout", 60.0)
    metrics.handled("shed")
    after = scrape(metrics)
    assert value(after, "tgrunner_updates_handled_total", outcome="ok") == 5
    assert value(after, "tgrunner_updates_handled_total", outcome="timeout") == 1
    assert value(after, "tgrunner_updates_handled_total", outcome="shed") == 1
    hist = "tgrunner_handle_duration_seconds"
    assert value(after, f"{hist}_bucket", le="0.001") == 1
    assert value(after, f"{hist}_bucket", le="0.005") == 3
    assert value(after, f"{hist}_bucket", le="30.0") == 3
    assert value(after, f"{hist}_bucket", le="60.0") == 5  # a bound is inclusive
    assert value(after, f"{hist}_bucket", le="+Inf") == 6
    assert value(after, f"{hist}_count") == 6
    assert value(after, f"{hist}_sum") == pytest.approx(0.0005 + 0.006 + 45 + 100 + 60)
    # The shed update had no duration and no lane wait: five waits were observed.
    assert value(after, "tgrunner_lane_wait_seconds_count") == 5


@pytest.mark.timeout(10)
def test_label_values_are_bounded() -> None:
    metrics = Metrics()
    metrics.received("polling", {"update_id": 5, "message": {}})
    metrics.received("polling", {"message": {}, "update_id": 6})  # field order does not matter
    metrics.received("polling", {"update_id": 7, "some_future_kind": {}})
    metrics.received("polling", {"update_id": 8})
    metrics.api_call("sendMessage", "ok")
    metrics.api_call("SENDMESSAGE", "error_429")
    metrics.api_call("sendMesage", "error_404")
    metrics.api_call("getUpdates", "network", 30.0)
    samples = scrape(metrics)
    received = "tgrunner_updates_received_total"
    assert value(samples, received, source="polling", kind="message") == 2
    assert value(samples, received, source="polling", kind="unknown") == 2
    calls = "tgrunner_api_calls_total"
    assert value(samples, calls, method="sendMessage", status="ok") == 1
    assert value(samples, calls, method="sendMessage", status="error_429") == 1
    assert value(samples, calls, method="other", status="error_404") == 1
    assert value(samples, "tgrunner_api_call_duration_seconds_count", method="getUpdates") == 1
    for bad in (
        lambda: metrics.received("carrier_pigeon", {"update_id": 1}),
        lambda: metrics.handled("fine"),
        lambda: metrics.api_call("sendMessage", "error_4290"),
        lambda: metrics.api_call("sendMessage", "chat 12345"),
        lambda: metrics.webhook_response(1000),
        lambda: metrics.worker_restart(-1),
    ):
        with pytest.raises(ValueError, match="is not"):
            bad()


@pytest.mark.timeout(10)
def test_api_status_names_each_failure() -> None:
    assert api_status(None) == "ok"
    assert api_status(RetryAfter("sendMessage", 429, "Too Many Requests", retry_after=3)) == (
        "error_429"
    )
    assert api_status(TimedOut("getMe", "no answer in 5 s")) == "network"
    assert api_status(NetworkError("getMe", "connection refused")) == "network"
    assert api_status(BadAnswer("getMe", "not JSON")) == "bad_answer"
    assert api_status(ValueError("x")) == "error"


@pytest.mark.timeout(10)
def test_gauges_are_read_at_scrape_time_and_a_failing_one_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(build_info=False)
    assert "tgrunner_lanes" not in generate_latest(metrics.registry).decode()  # never bound
    lanes = [3]
    calls = []

    def backlog() -> float:
        calls.append(1)
        raise RuntimeError("the scheduler is gone")

    metrics.bind_gauges(lanes=lambda: lanes[0], backlog=backlog)
    metrics.handled("ok", 0.01)  # recording never reads a gauge
    assert calls == []
    assert value(scrape(metrics), "tgrunner_lanes") == 3
    lanes[0] = 9
    samples = scrape(metrics)
    assert value(samples, "tgrunner_lanes") == 9
    assert not any(name == "tgrunner_backlog" for name, _ in samples)
    assert not any(name == "tgrunner_build_info" for name, _ in samples)
    assert len(calls) == 2
    warnings = [r for r in caplog.records if "tgrunner_backlog" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not at every scrape


@pytest.mark.timeout(10)
def test_a_snapshot_holds_totals_of_counters_and_histograms_only() -> None:
    metrics = Metrics()
    metrics.bind_gauges(in_flight=lambda: 4)
    metrics.handled("ok", 0.002, 0.0)
    metrics.api_call("sendMessage", "ok", 0.05)
    data = orjson.loads(metrics.snapshot())
    assert data["v"] == 1
    names = set(data["values"])
    assert "tgrunner_updates_in_flight" not in names and "tgrunner_build_info" not in names
    [[labels, hist]] = data["values"]["tgrunner_api_call_duration_seconds"]
    assert labels == ["sendMessage"] and len(hist) == len(BUCKETS) + 2
    assert sum(hist[:-1]) == 1 and hist[-1] == pytest.approx(0.05)
    metrics.handled("ok", 0.002)
    again = orjson.loads(metrics.snapshot())["values"]["tgrunner_updates_handled_total"]
    assert ["ok"] in [labels for labels, _ in again] and dict(
        (labels[0], n) for labels, n in again
    )["ok"] == 2


ID = re.compile(r"-?\d{5,}")


@pytest.mark.timeout(30)
async def test_no_label_is_a_chat_or_user_id_after_traffic(tg: FakeTelegram, api: Call) -> None:
    """Real updates of several kinds from FakeTelegram's users, and real API calls."""
    metrics = Metrics()
    alice = tg.user("Alice", username="alice")
    bob = tg.user("Bob")
    team = tg.supergroup("Team", members=[alice, bob])
    alice.send("/start")
    bob.send("hello")
    alice.send("hi all", chat=team)
    alice.inline_query("cats")
    bob.send_location(51.5, -0.12)
    status, body = await api("getUpdates", timeout=0)
    assert status == 200
    updates: list[dict[str, Any]] = body["result"]
    assert len(updates) >= 5
    ids = {str(alice.id), str(bob.id), str(team.id)}
    for update in updates:
        metrics.received("polling", update)
        for kind, payload in update.items():
            if kind == "update_id":
                continue
            chat = payload.get("chat") or payload.get("from") or {}
            started = time.perf_counter()
            status, reply = await api("sendMessage", chat_id=chat["id"], text="ok")
            error = None if reply["ok"] else RetryAfter("sendMessage", status, "")
            metrics.api_call("sendMessage", api_status(error), time.perf_counter() - started)
            metrics.handled("ok", 0.01, 0.0)
        metrics.webhook_response(200)
    samples = scrape(metrics)
    labels = {v for _, pairs in samples for _, v in pairs}
    assert "message" in labels and "inline_query" in labels and "sendMessage" in labels
    assert not labels & ids
    assert not [label for label in labels if ID.search(label)]
