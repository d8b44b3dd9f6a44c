"""The journal as the runtime's default intake, against FakeTelegram: ids that restart lower
are new updates, a second process is refused before any replay, one stuck update grows no
bookkeeping, and one chat at its per-key limit never stops the others."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.intake.journal import Journal
from tgrunner.intake.options import IntakeOptions
from tgrunner.runtime.runner import Runner
from tgrunner.scheduler import SchedulerOptions
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram

FAST = PollingOptions(timeout=1, backoff_base=0.01, backoff_cap=0.05)
MODES = {"journal": IntakeOptions(), "strict": IntakeOptions(journal=False)}

Handler = Callable[[dict[str, Any], Bot], Any]


def runner_for(tg: FakeTelegram, handler: Handler, mode: str = "journal", **sched: Any) -> Runner:
    settings = Settings(
        polling=FAST,
        intake=MODES[mode],
        scheduler=SchedulerOptions(**sched) if sched else SchedulerOptions(),
        grace=5.0,
    )
    return Runner(handler, token=tg.token, api_url=tg.api_url, settings=settings)


def held_chat(release: asyncio.Event, seen: dict[str, list[str]]) -> Handler:
    """A handler that records texts per sender; the sender "Busy" waits for ``release``."""

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        message = update["message"]
        name = message["from"]["first_name"]
        if name == "Busy":
            await release.wait()
        seen.setdefault(name, []).append(message["text"])

    return handler


def one_busy_chat_and_twenty_others(tg: FakeTelegram) -> None:
    busy = tg.user("Busy")
    for n in range(40):
        busy.send(str(n))
    for i in range(20):
        tg.user(f"O{i}").send("hi")


def texts(seen: list[dict[str, Any]]) -> list[str]:
    return [u["message"]["text"] for u in seen]


@pytest.mark.parametrize("mode", MODES)
async def test_update_ids_that_restart_lower_are_new_updates(tg: FakeTelegram, mode: str) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        seen.append(update)

    runner = runner_for(tg, handler, mode)
    task = asyncio.create_task(runner.serve(install_signals=False))
    alice = tg.user("Alice")
    for text in ("a", "b", "c"):
        alice.send(text)
    await tg.wait_for(lambda: len(seen) == 3, timeout=10)
    # Telegram restarts ids at random after a quiet week: far below the offset.
    tg.restart_update_ids(seen[0]["update_id"] - 100_000)
    for text in ("d", "e"):
        alice.send(text)
    await tg.wait_for(lambda: len(seen) == 5, timeout=10)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert texts(seen) == ["a", "b", "c", "d", "e"]
    assert seen[3]["update_id"] < seen[0]["update_id"]
    assert tg.pending_updates == 0


async def test_a_second_runner_on_the_same_data_dir_is_refused_before_replay(
    tg: FakeTelegram,
) -> None:
    release = asyncio.Event()
    first_seen: list[int] = []

    async def slow(update: dict[str, Any], bot: Bot) -> None:
        first_seen.append(update["update_id"])
        await release.wait()

    first = runner_for(tg, slow)
    task = asyncio.create_task(first.serve(install_signals=False))
    tg.user("Alice").send("held")
    await tg.wait_for(lambda: len(first_seen) == 1, timeout=10)
    calls_before = len(tg.requests)

    second_seen: list[int] = []

    async def record(update: dict[str, Any], bot: Bot) -> None:
        second_seen.append(update["update_id"])

    second = runner_for(tg, record)
    with pytest.raises(ConfigError, match="Another process"):
        await asyncio.wait_for(second.serve(install_signals=False), 10)
    assert second_seen == []  # the unfinished update was not replayed by the second
    assert len(tg.requests) == calls_before  # nor did it call Telegram
    release.set()
    first.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_one_stuck_update_grows_no_bookkeeping(tg: FakeTelegram) -> None:
    release = asyncio.Event()
    done: list[int] = []

    async def handler(update: dict[str, Any], bot: Bot) -> None:
        if update["message"]["text"] == "stuck":
            await release.wait()
        done.append(update["update_id"])

    runner = runner_for(tg, handler)
    task = asyncio.create_task(runner.serve(install_signals=False))
    tg.user("Stuck").send("stuck")
    users = [tg.user(f"U{i}") for i in range(30)]
    for n in range(300):
        users[n % 30].send(str(n))
    await tg.wait_for(lambda: len(done) == 300, timeout=20)
    journal = runner.intake
    assert isinstance(journal, Journal)
    await journal.flush()
    # Only the stuck update is remembered: in the journal, and as running.
    assert journal.pending == 1
    assert runner.source.in_flight == 0  # type: ignore[attr-defined]
    assert runner.scheduler.running == 1 and runner.scheduler.pending == 0
    release.set()
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0


async def test_a_full_lane_parks_in_the_journal_and_others_go_on(tg: FakeTelegram) -> None:
    release = asyncio.Event()
    seen: dict[str, list[str]] = {}
    handler = held_chat(release, seen)

    runner = runner_for(tg, handler, max_pending_per_key=5, max_pending=50, concurrency=10)
    task = asyncio.create_task(runner.serve(install_signals=False))
    one_busy_chat_and_twenty_others(tg)
    await tg.wait_for(lambda: sum(len(seen.get(f"O{i}", [])) for i in range(20)) == 20, 10)
    assert "Busy" not in seen
    assert runner.admission.parked >= 40 - 5
    release.set()
    await tg.wait_for(lambda: len(seen.get("Busy", [])) == 40, timeout=20)
    assert seen["Busy"] == [str(n) for n in range(40)]  # parked ones kept their order
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    assert runner.admission.shed == 0 and runner.admission.overflow.count == 0


async def test_a_full_lane_with_strict_offsets_is_shed_with_a_warning(
    tg: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()
    seen: dict[str, list[str]] = {}
    handler = held_chat(release, seen)

    runner = runner_for(
        tg, handler, "strict", max_pending_per_key=5, max_pending=50, concurrency=10
    )
    task = asyncio.create_task(runner.serve(install_signals=False))
    one_busy_chat_and_twenty_others(tg)
    with caplog.at_level(logging.WARNING, logger="tgrunner.runtime.runner"):
        await tg.wait_for(lambda: sum(len(seen.get(f"O{i}", [])) for i in range(20)) == 20, 10)
    assert runner.admission.shed > 0
    assert any("dropping update" in r.getMessage() for r in caplog.records)
    release.set()
    await tg.wait_for(lambda: runner.scheduler.running == 0, timeout=10)
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
    # The first five of the full chat ran, in order; the shed ones are confirmed, not redone.
    assert seen["Busy"][:5] == [str(n) for n in range(5)]
    assert tg.pending_updates == 0
