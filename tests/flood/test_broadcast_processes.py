"""A broadcast of 2,000 chats sent by a child process that is SIGKILLed (by its PID) at chosen
points and started again: at the end every chat got the message, none more than once except
those in flight at a kill (at most the window per kill), blocked and missing chats are
recorded, and the outbox opens, whole, after every kill."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from broadcast_support import add_chats, delivered, recipient_states
from processes import BotProcess, adopt, end_started_bots
from tgrunner.flood.outbox import Outbox
from tgrunner.testing import FakeTelegram

TESTS = Path(__file__).parents[1]
CHATS = 2000
BLOCKED = 10
MISSING = 10
WINDOW = 30


async def start_child(tg: FakeTelegram, folder: Path) -> BotProcess:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(TESTS / "broadcast_child.py"),
        tg.api_url, tg.token, str(folder / "broadcasts.sqlite"), str(folder / "chats.json"),
        str(WINDOW),
        cwd=TESTS,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return adopt(proc)


def check_opens(path: Path) -> None:
    """The outbox opens after a kill, whole, with its counts equal to its rows."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    with Outbox(path) as outbox:
        for progress in outbox.listing():
            states = list(recipient_states(path, progress.id).values())
            assert progress.counts() == {s: states.count(s) for s in progress.counts()}


async def scenario(folder: Path, kills: list[int | float]) -> None:
    """Kill the sender once FakeTelegram has answered each of ``kills`` sends (an int), or
    that many seconds after it was started (a float)."""
    async with FakeTelegram() as tg:
        good = add_chats(tg, CHATS - BLOCKED - MISSING)
        blocked = []
        for i in range(BLOCKED):
            user = tg.user(f"Blocker{i}")
            user.block_bot()
            blocked.append(user.id)
        missing = list(range(900_000, 900_000 + MISSING))
        chats = [*good, *blocked, *missing]
        (folder / "chats.json").write_text(json.dumps(chats))
        path = folder / "broadcasts.sqlite"
        killed = 0
        try:
            for point in kills:
                child = await start_child(tg, folder)
                if isinstance(point, float):
                    await asyncio.sleep(point)  # a kill at a random moment, start-up included
                else:
                    sent = len(tg.calls("sendMessage"))
                    try:
                        await tg.wait_for(lambda n=point: len(tg.calls("sendMessage")) >= n, 20)
                    except TimeoutError:  # it ended before this point
                        assert "done" in child.log and sent < point, child.log
                        break
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                if await child.proc.wait() != -9:  # it ended first; "done" alone: a killed
                    # sender had sent the last chat already, and nothing was left for this one
                    assert child.log.splitlines()[-1] in ("done done", "done"), child.log
                    break
                killed += 1
                if path.exists():
                    check_opens(path)
            child = await start_child(tg, folder)
            code, log = await child.finish(timeout=60)
            # "done done", or "done" alone: a killed sender had ended it, nothing was left
            assert code == 0 and log.splitlines()[-1] in ("done done", "done"), log
        finally:
            await end_started_bots()
        check_opens(path)
        got = delivered(tg)
        assert set(got) == set(good), "every chat that can be written to got it"
        assert sum(got.values()) - len(good) <= WINDOW * killed, (got.most_common(3), killed)
        with Outbox(path) as outbox:
            [progress] = outbox.listing()
            assert (progress.state, progress.sent) == ("done", len(good))
            assert (progress.blocked, progress.missing, progress.failed) == (BLOCKED, MISSING, 0)
        states = recipient_states(path, progress.id)
        assert {states[c] for c in blocked} == {"blocked"}
        assert {states[c] for c in missing} == {"missing"}
        texts = {r.params["chat_id"]: r.params["text"] for r in tg.calls("sendMessage") if r.ok}
        assert all(texts[c] == f"hello {c}" for c in good)  # the build, after each restart too


def run_scenario(kills: list[int | float]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="broadcast-kills-"))
    try:
        asyncio.run(scenario(folder, kills))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(60)
def test_a_broadcast_killed_once_resumes_without_loss() -> None:
    run_scenario([700])


@pytest.mark.slow
@pytest.mark.timeout(300)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kills=st.lists(
        st.one_of(st.integers(0, CHATS), st.floats(0.0, 0.5)), min_size=1, max_size=4
    ).map(lambda points: sorted(points, key=lambda p: (isinstance(p, float), p)))
)
@example(kills=[0, 1, 1990])  # at its start, at once after, and near the end
@example(kills=[0.05, 0.2, 0.3])  # while it imports, opens the outbox, writes the broadcast
def test_a_broadcast_killed_anywhere_delivers_each_chat(kills: list[int | float]) -> None:
    run_scenario(kills)
