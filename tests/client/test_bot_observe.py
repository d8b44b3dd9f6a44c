"""How a Bot reports its calls (``observe``): the transport's time of each exchange, the
successful calls of listed methods appended inline, every other call to the hook; against
FakeTelegram over real HTTP, on both transports."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import uvloop

from tgrunner.client.bot import Bot
from tgrunner.client.timing import CallTimes
from tgrunner.errors import BadRequest, NetworkError
from tgrunner.testing import FakeTelegram
from tgrunner.testing.fake.faults import Faults

LATENCY = 0.05
TRANSPORTS = pytest.mark.parametrize("transport", ["fast", "aiohttp"])


class Seen:
    """A hook that records what it was told, and a fold that records what it folded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, BaseException | None, float | None]] = []
        self.folded: list[tuple[str, list[float]]] = []

    def hook(self, method: str, error: BaseException | None, seconds: float | None) -> None:
        self.calls.append((method, error, seconds))

    def fold(self, method: str, values: list[float]) -> None:
        self.folded.append((method, list(values)))
        values.clear()


@pytest.mark.timeout(20)
@TRANSPORTS
async def test_the_transport_times_each_exchange(tg: FakeTelegram, transport: str) -> None:
    tg.faults = Faults(latency=LATENCY, methods=frozenset({"getMe"}))
    async with Bot(tg.token, api_url=tg.api_url, transport=transport) as bot:
        seen = Seen()
        bot.on_call = seen.hook
        began = time.monotonic()
        await bot.call("getMe")
        took = time.monotonic() - began
        await bot.call("getMyCommands")
    (method, error, seconds), (_, _, quick) = seen.calls
    assert (method, error) == ("getMe", None)
    assert seconds is not None and LATENCY <= seconds <= took
    assert quick is not None and 0 < quick < LATENCY


@pytest.mark.timeout(20)
@TRANSPORTS
async def test_listed_methods_are_appended_and_folded_others_reach_the_hook(
    tg: FakeTelegram, transport: str
) -> None:
    alice = tg.user("Alice")
    seen = Seen()
    pending: dict[str, list[float]] = {"sendMessage": []}
    async with Bot(tg.token, api_url=tg.api_url, transport=transport) as bot:
        bot.observe(seen.hook, CallTimes(pending, fold=seen.fold, every=3))
        for n in range(4):
            await bot.send_message(alice.chat.id, f"m{n}")
        await bot.call("getMe")
        await bot.call("sendmessage", chat_id=alice.chat.id, text="other spelling")
    assert [m for m, _, _ in seen.calls] == ["getMe", "sendmessage"]
    ((method, folded),) = seen.folded
    assert method == "sendMessage" and len(folded) == 3
    assert len(pending["sendMessage"]) == 1
    assert all(0 < s < 5 for s in [*folded, *pending["sendMessage"]])
    assert len(tg.replies(alice)) == 5


@pytest.mark.timeout(20)
async def test_failed_calls_reach_the_hook_timed_only_when_an_answer_came(
    tg: FakeTelegram,
) -> None:
    seen = Seen()
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        bot.observe(seen.hook, CallTimes({"sendMessage": []}, fold=seen.fold))
        with pytest.raises(BadRequest):
            await bot.send_message(123456789, "nobody is there")
        tg.faults = Faults(reset_rate=1.0, methods=frozenset({"sendMessage"}))
        with pytest.raises(NetworkError):
            await bot.send_message(123456789, "reset")
    (m1, e1, s1), (m2, e2, s2) = seen.calls
    assert (m1, type(e1), m2, type(e2)) == ("sendMessage", BadRequest, "sendMessage", NetworkError)
    assert s1 is not None and s1 > 0
    assert s2 is None


@pytest.mark.timeout(20)
async def test_observe_none_and_on_call_none_stop_reporting(tg: FakeTelegram) -> None:
    seen = Seen()
    pending: dict[str, list[float]] = {"getMe": []}
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        bot.observe(seen.hook, CallTimes(pending, fold=seen.fold))
        await bot.call("getMe")
        bot.observe(None, CallTimes(pending, fold=seen.fold))  # times without a hook: none
        await bot.call("getMe")
        bot.on_call = seen.hook  # the setter leaves the times out
        await bot.call("getMe")
        bot.on_call = None
        await bot.call("getMe")
    assert len(pending["getMe"]) == 1
    assert [m for m, _, _ in seen.calls] == ["getMe"]


@pytest.mark.timeout(20)
async def test_concurrent_calls_each_get_their_own_time(tg: FakeTelegram) -> None:
    def latency(method: str) -> float:
        return 0.2 if method == "getMe" else 0.0

    tg.faults = Faults(latency=latency)
    seen = Seen()
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        bot.on_call = seen.hook
        slow = asyncio.ensure_future(bot.call("getMe"))
        quick: list[Any] = [await bot.call("getMyCommands") for _ in range(3)]
        await slow
    assert len(quick) == 3
    times = {m: s for m, _, s in seen.calls}
    assert times["getMe"] is not None and times["getMe"] >= 0.2
    assert times["getMyCommands"] is not None and times["getMyCommands"] < 0.2


@pytest.mark.timeout(30)
@TRANSPORTS
def test_times_under_uvloop_are_finer_than_its_millisecond_clock(transport: str) -> None:
    """uvloop's ``loop.time()`` moves in steps of 1 ms: quick calls timed on it would mostly
    take 0.0 s."""

    async def main() -> list[float | None]:
        seen = Seen()
        async with (
            FakeTelegram() as tg,
            Bot(tg.token, api_url=tg.api_url, transport=transport) as bot,
        ):
            bot.on_call = seen.hook
            for _ in range(20):
                await bot.call("getMyCommands")
        return [s for _, _, s in seen.calls]

    times = uvloop.run(main())
    assert len(times) == 20
    assert all(s is not None and 0 < s < 1 for s in times)
    assert any(s is not None and round(s * 1000, 6) % 1 for s in times)  # not all whole ms


@pytest.mark.timeout(20)
async def test_a_bot_observed_by_metrics_counts_every_call_exactly(tg: FakeTelegram) -> None:
    """The runtime's wiring: the first success of a method goes through api_result (which
    makes its list), the rest are appended inline and folded every 3; reads between folds
    count what waits too."""
    from tgrunner.observability import Metrics

    alice = tg.user("Alice")
    metrics = Metrics(fold_every=3)
    seen: list[int] = []
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        bot.observe(metrics.api_result, metrics.api_call_times())
        for n in range(8):
            await bot.send_message(alice.chat.id, f"m{n}")
            if n in (1, 4):
                seen.append(api_ok(metrics))  # a read in the middle folds what waits
        with pytest.raises(BadRequest):
            await bot.send_message(123456789, "nobody")
        await bot.call("getMe")
    values = metrics.monotonic_values()
    assert seen == [2, 5]
    assert values["tgrunner_api_calls_total"] == {
        ("sendMessage", "ok"): 8,
        ("sendMessage", "error_400"): 1,
        ("getMe", "ok"): 1,
    }
    hist = values["tgrunner_api_call_duration_seconds"][("sendMessage",)]
    assert isinstance(hist, list) and sum(hist[:-1]) == 9 and 0 < hist[-1] < 9


def api_ok(metrics: Any) -> int:
    return int(metrics.monotonic_values()["tgrunner_api_calls_total"][("sendMessage", "ok")])
