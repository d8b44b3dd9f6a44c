"""Unchanged aiogram and PTB bots with ``tgrunner run --workers 2``: 40 users fill in a 3-step
form at once (aiogram's MemoryStorage FSM, PTB's ConversationHandler) and every conversation
completes, because each chat stays in one worker. The frameworks' lifecycle hooks run in each
worker, PTB's start-up jobs in one, and a PicklePersistence is refused."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from processes import end_started_bots, start_bot
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[1] / "bots"
STEPS = ["name?", "age?", "city?"]

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


def _fill_in_forms(tg: FakeTelegram, count: int) -> list[Any]:
    """``count`` users each send /start and three answers, all interleaved."""
    users = [tg.user(f"form{i}") for i in range(count)]
    for user in users:
        user.command("start")
    for step in ("name", "age", "city"):
        for i, user in enumerate(users):
            user.send(f"{step}{i}")
    return users


def _check_forms(tg: FakeTelegram, users: list[Any]) -> set[str]:
    """Each user got the three questions, then a summary of their own answers; returns the
    pids that held the forms."""
    pids: set[str] = set()
    for i, user in enumerate(users):
        texts = [m["text"] for m in tg.replies(user)]
        assert texts[:3] == STEPS, texts
        match = re.fullmatch(rf"done name{i} age{i} city{i} in (\d+)", texts[3])
        assert match, texts
        assert len(texts) == 4, texts
        pids.add(match[1])
    return pids


@pytest.mark.parametrize("target", ["aiogram_form:dp", "ptb_form:application"])
@pytest.mark.timeout(90)
async def test_forty_users_complete_their_forms_across_two_workers(
    tg: FakeTelegram, tmp_path: Path, target: str
) -> None:
    hooks = {"HOOKS_DIR": str(tmp_path)}
    bot = await start_bot(tg, target, "--workers", "2", cwd=BOTS, env=hooks)
    users = _fill_in_forms(tg, 40)
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 4 for u in users), timeout=45)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err, err
    pids = _check_forms(tg, users)
    assert len(pids) == 2, "both workers held forms"
    # The framework's hooks ran in each worker, and not in the supervisor.
    names = set(os.listdir(tmp_path))
    pid = str(bot.proc.pid)
    hooks_run = (
        ("startup", "shutdown") if target.startswith("aiogram") else
        ("post_init", "post_stop", "post_shutdown")
    )  # fmt: skip
    for hook in hooks_run:
        assert {f"{hook}-{p}" for p in pids} <= names, (hook, names)
        assert f"{hook}-{pid}" not in names


@pytest.mark.timeout(60)
async def test_ptb_start_up_jobs_run_in_one_worker_only(tg: FakeTelegram) -> None:
    jobs = tg.user("jobs")
    bot = await start_bot(
        tg, "ptb_form:application", "--workers", "2", cwd=BOTS,
        env={"PTB_JOB_CHAT": str(jobs.chat.id)},
    )  # fmt: skip
    # 0.1 s apart: both workers start their loops within a fraction of a second of each other,
    # so if both ran the job, 20 runs would show both pids.
    await tg.wait_for_replies(jobs, 20, timeout=30)
    # A job a handler adds runs where the handler ran: in either worker.
    users = [tg.user(f"remind{i}") for i in range(12)]
    for user in users:
        user.command("remind")
    await tg.wait_for(lambda: all(tg.replies(u) for u in users), timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    runs = {m["text"] for m in tg.replies(jobs)}
    assert len(runs) == 1, runs
    assert "1 job(s) set up at start run in worker process 0, not here" in err
    reminders = {m["text"] for u in users for m in tg.replies(u)}
    assert {t.partition(" from ")[0] for t in reminders} == {"reminder"}
    assert len(reminders) == 2, f"handlers' jobs ran in both workers: {reminders}"


@pytest.mark.timeout(60)
async def test_a_pickle_persistence_is_refused_with_two_workers(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    pickle = tmp_path / "state.pickle"
    env = {**os.environ, "PTB_PICKLE": str(pickle)}
    bot = await _run(tg, ["ptb_form:application", "--workers", "2"], env)
    code, err = await bot
    assert code == 2, err
    assert "PicklePersistence keeps its data in one file" in err
    assert "2 worker processes would each rewrite and corrupt" in err
    assert "use tgrunner.state.bridges.ptb.TgrunnerPersistence" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not pickle.exists()


async def _run(tg: FakeTelegram, args: list[str], env: dict[str, str]) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", *args,
        "--api-url", tg.api_url, "--token", tg.token,
        cwd=BOTS, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def ended() -> tuple[int, str]:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, err.decode()

    return ended()


@pytest.mark.parametrize(
    ("target", "replies"),
    [
        ("aiogram_quick:main", lambda i: [f"Hello, <b>E{i}</b>!", f"hi {i}"]),
        ("aiogram_quick_main:main", lambda i: ["echo: /start", f"echo: hi {i}"]),
        ("ptb_echobot:main", lambda i: [f'Hi <a href="tg://user?id=ID">E{i}</a>!', f"hi {i}"]),
    ],
)
@pytest.mark.timeout(60)
async def test_an_entry_point_runs_in_each_worker(
    tg: FakeTelegram, target: str, replies: Any
) -> None:
    bot = await start_bot(tg, target, "--workers", "2", cwd=BOTS)
    users = [tg.user(f"E{i}") for i in range(12)]
    for i, user in enumerate(users):
        user.command("start")
        user.send(f"hi {i}")
    await tg.wait_for(lambda: all(len(tg.replies(u)) >= 2 for u in users), timeout=30)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err
    for i, user in enumerate(users):
        texts = [m["text"] for m in tg.replies(user)]
        want = [t.replace("ID", str(user.id)) for t in replies(i)]
        assert texts == want, texts
    assert "2 worker processes ready" in err
    if target == "aiogram_quick_main:main":
        # main's cleanup after start_polling ran in the supervisor and in each worker; in a
        # worker, the handler saw the resource main opened around the call.
        assert err.count("main: cleanup ran") == 3, err
        assert "main: cleanup ran (resource open during polling: True)" in err
