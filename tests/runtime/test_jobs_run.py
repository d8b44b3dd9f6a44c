"""Jobs from the CLI, in real processes against FakeTelegram: native, aiogram and PTB bots run
by ``tgrunner run --job-workers 1`` (and with ``--workers 2``) each get their job's reply,
pointing at the message that asked; queued jobs survive a restart of the bot; ``tgrunner
worker --burst`` drains what a bot queued; SIGTERM of ``tgrunner worker`` mid-job finishes
the job within the grace or gives it back; a bot killed outright takes its job workers with
it; ``tgrunner jobs`` counts."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from job_runs import (
    BOTS,
    ask,
    check_replies,
    counts,
    job_replies,
    processing,
    sent,
    start_worker,
    tgrunner,
)
from processes import BotProcess, end_started_bots, start_bot
from tgrunner.testing import FakeTelegram

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
async def _end_our_processes() -> AsyncIterator[None]:
    yield
    await end_started_bots()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(
    "target", ["jobs_native:router", "jobs_aiogram:dp", "jobs_ptb:application"]
)
async def test_each_front_end_gets_its_jobs_replies(
    tg: FakeTelegram, target: str, workers: str
) -> None:
    bot = await start_bot(tg, target, "--job-workers", "1", "--workers", workers, cwd=BOTS)
    await bot.wait_for_line("1 job worker(s) on sqlite:///", timeout=30)
    asked = ask(tg, 6)
    await tg.wait_for(lambda: len(job_replies(tg)) >= 6 and processing(tg) >= 6, timeout=45)
    err = await bot.stop()
    check_replies(tg, asked)
    assert processing(tg) == 6
    assert re.search(r"job worker 0: pid \d+, exited with code 0", err), err
    # The job workers are stopped after the bot: their summary comes after its last update.
    assert err.index("received SIGTERM") < err.index("job worker 0: pid"), err


async def test_queued_jobs_survive_a_restart_of_the_bot(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "jobs_native:router", cwd=BOTS)  # --job-workers 0
    asked = ask(tg, 4)
    await tg.wait_for(lambda: processing(tg) >= 4, timeout=30)
    await bot.stop()
    assert job_replies(tg) == {}
    assert await counts(tg) == {"queued": 4, "scheduled": 0, "started": 0, "finished": 0,
                                "failed": 0, "canceled": 0}  # fmt: skip
    bot = await start_bot(tg, "jobs_native:router", "--job-workers", "1", cwd=BOTS)
    await tg.wait_for(lambda: len(job_replies(tg)) >= 4, timeout=45)
    await bot.stop()
    check_replies(tg, asked)
    assert (await counts(tg))["finished"] == 4


async def test_tgrunner_worker_burst_drains_what_the_bot_queued(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "jobs_aiogram:dp", "--job-workers", "0", cwd=BOTS)
    asked = ask(tg, 5)
    await tg.wait_for(lambda: processing(tg) >= 5, timeout=30)
    code, _, err = await tgrunner("worker", "jobs_aiogram", "--burst", "--concurrency", "2", tg=tg)
    assert code == 0, err
    assert "Traceback" not in err
    check_replies(tg, asked)  # all of them: the burst ended only once the queue was drained
    await bot.stop()
    assert (await counts(tg))["finished"] == 5


async def test_tgrunner_worker_with_processes_drains_then_exits_in_burst_mode(
    tg: FakeTelegram,
) -> None:
    bot = await start_bot(tg, "jobs_native:router", cwd=BOTS)
    asked = ask(tg, 6)
    await tg.wait_for(lambda: processing(tg) >= 6, timeout=30)
    await bot.stop()
    code, _, err = await tgrunner("worker", "jobs_native", "--processes", "2", "--burst", tg=tg)
    assert code == 0, err
    check_replies(tg, asked)
    # Each process drained and exited 0, and was not started again.
    assert len(re.findall(r"job worker \d: pid \d+, exited with code 0", err)) == 2, err
    assert "restart" not in err, err


async def _slow_job_started(tg: FakeTelegram, ms: int) -> None:
    bot = await start_bot(tg, "jobs_native:router", cwd=BOTS)
    tg.user("ann").send(f"slow {ms}")
    await tg.wait_for(lambda: processing(tg) >= 1, timeout=30)
    await bot.stop()
    # The job's progress ("working") is the sign it runs.
    await tg.wait_for(lambda: any(p.get("text") == "working" for p in sent(tg)), timeout=30)


async def test_sigterm_of_a_worker_mid_job_lets_it_finish_within_the_grace(
    tg: FakeTelegram,
) -> None:
    worker = await start_worker(tg, "jobs_native", "--grace", "30")
    await _slow_job_started(tg, 1500)
    worker.send_signal(signal.SIGTERM)
    code, err = await worker.finish()
    assert code == 0, err
    assert "Traceback" not in err
    edits = [p["text"] for p in sent(tg, "editMessageText")]
    assert edits == ["done: slow 1500"], edits  # the status message became the result
    assert (await counts(tg))["finished"] == 1


async def test_sigterm_of_a_worker_past_the_grace_gives_the_job_back_at_once(
    tg: FakeTelegram,
) -> None:
    worker = await start_worker(tg, "jobs_native", "--grace", "0.2")
    await _slow_job_started(tg, 6000)
    loop = asyncio.get_running_loop()
    began = loop.time()
    worker.send_signal(signal.SIGTERM)
    code, err = await worker.finish()
    assert code == 0, err
    assert loop.time() - began < 5, "given back at once, not once the job ended (6 s)"
    assert "given back to the queue" in err, err
    assert (await counts(tg))["queued"] == 1
    assert sent(tg, "editMessageText") == []
    # Another worker takes it at once (no lease to wait out) and edits the same status message.
    code, _, err = await tgrunner("worker", "jobs_native", "--burst", tg=tg)
    assert code == 0, err
    status = next(r.response for r in tg.calls("sendMessage") if r.params["text"] == "working")
    edits = [p for p in sent(tg, "editMessageText") if p["text"].startswith("done:")]
    assert [(p["text"], p["message_id"]) for p in edits] == [
        ("done: slow 6000", status["message_id"])
    ]
    assert (await counts(tg))["finished"] == 1


async def test_a_bot_killed_outright_takes_its_job_workers_with_it(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "jobs_native:router", "--job-workers", "2", cwd=BOTS)
    log = await bot.wait_for_line("job worker(s) on", timeout=30)
    found = re.search(r"2 job worker\(s\) on \S+ \(pids (\d+), (\d+)\)", log)
    assert found, log
    pidfds = [os.pidfd_open(int(pid)) for pid in found.groups()]
    try:
        bot.kill()  # SIGKILL: no stop, no chance to stop its job workers itself
        loop = asyncio.get_running_loop()
        for fd in pidfds:  # readable once that process has exited
            ended = loop.create_future()
            loop.add_reader(fd, ended.set_result, None)
            try:
                async with asyncio.timeout(15):
                    await ended
            finally:
                loop.remove_reader(fd)
    finally:
        for fd in pidfds:
            os.close(fd)


async def _readyz(bot: BotProcess) -> tuple[int, dict[str, Any]]:
    pytest.importorskip("prometheus_client")
    await bot.wait_for_line(" · polling ", timeout=30)  # the start line: the bot has opened
    log = await bot.wait_for_line("metrics on http://", timeout=30)
    found = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", log)
    assert found, log
    async with aiohttp.ClientSession() as session, session.get(f"{found[1]}/readyz") as resp:
        return resp.status, await resp.json()


async def test_readyz_checks_the_job_queue_and_the_job_workers(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "jobs_native:router", "--job-workers", "1", "--metrics",
                          "127.0.0.1:0", cwd=BOTS)  # fmt: skip
    status, body = await _readyz(bot)
    assert status == 200, body
    assert body["checks"] == {"source": True, "journal": True, "jobs": True,
                              "job_workers": True, "state": True}  # fmt: skip
    await bot.stop()


async def test_readyz_fails_while_the_job_queue_is_unreachable(tg: FakeTelegram) -> None:
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jobs = f"redis://127.0.0.1:{port}/0?retry_for=0.5"
    bot = await start_bot(tg, "jobs_native:router", "--jobs", jobs, "--metrics", "127.0.0.1:0",
                          cwd=BOTS)  # fmt: skip
    status, body = await _readyz(bot)
    assert status == 503, body
    assert body["failing"] == ["jobs"] and body["checks"]["source"] is True, body
    err = await bot.stop()
    assert "/readyz: the job queue redis://127.0.0.1:" in err, err
