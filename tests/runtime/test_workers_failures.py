"""``tgrunner run --workers 2`` when things go wrong, through the CLI against FakeTelegram: a
second signal, SIGHUP under load, a poison update, a start-up crash loop, a hung worker and
SIGKILLs of random workers. The figures the issue asks for (time to see a death, to serve
again, to swap the workers) are printed (``pytest -s``), read from the log's timestamps."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

import tgrunner
from processes import MODES, BotProcess, end_started_bots, journaled, start_bot, unfinished
from replies import frontier, missing, replied, send_load, send_round, tally
from tgrunner.executors.processes import slot_for
from tgrunner.testing import FakeTelegram

PACKAGE = str(Path(tgrunner.__file__).parent)
"""Where tgrunner's own frames would come from."""

BOTS = Path(__file__).parents[1] / "bots"
READY = re.compile(r"worker (\d+) \(pid (\d+)\) ready in")

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


def _at(line: str) -> float:
    """The epoch time of a log line (``2026-01-02 10:11:12,345 ...``)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _line(bot: BotProcess, text: str, after: int = 0) -> str:
    return next(line for line in bot.lines[after:] if text in line)


def _pids(bot: BotProcess) -> dict[int, int]:
    """Each slot's latest worker pid, from the "ready" lines of the log."""
    found: dict[int, int] = {}
    for line in bot.lines:
        if m := READY.search(line):
            found[int(m[1])] = int(m[2])
    return found


def _users_in_slot(tg: FakeTelegram, slot: int, count: int, tag: str) -> list[object]:
    found: list[object] = []
    n = 0
    while len(found) < count:
        user = tg.user(f"{tag}{n}")
        n += 1
        if slot_for(f"c:{user.chat.id}", 2) == slot:
            found.append(user)
    return found


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(60)
async def test_a_second_signal_exits_at_once(tg: FakeTelegram, mode: str) -> None:
    bot = await start_bot(
        tg, "slow_bot:router", "--workers", "2", "--grace", "60", *MODES[mode], cwd=BOTS
    )
    alice = tg.user("Alice")
    alice.send("work")
    await tg.wait_for_replies(alice, 1, timeout=20)  # "started": the handler runs in a worker
    bot.send_signal(signal.SIGTERM)
    await bot.wait_for_line("waiting up to")
    bot.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code, err = await bot.finish(timeout=10)
    assert code == 1, err
    assert time.monotonic() - started < 5
    assert "Traceback" not in err
    assert unfinished(tg, mode) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(90)
async def test_sighup_replaces_the_workers_under_load_losing_and_repeating_nothing(
    tg: FakeTelegram, mode: str
) -> None:
    users = [tg.user(f"H{i}") for i in range(40)]
    sent: dict[int, list[str]] = {}
    n = 0
    for _ in range(5):
        n = send_round(users, sent, n)
    bot = await start_bot(tg, "echo_bot:router", "--workers", "2", *MODES[mode], cwd=BOTS)
    await tg.wait_for(lambda: replied(tg) >= 100, timeout=20)
    before = _pids(bot)
    bot.send_signal(signal.SIGHUP)
    # Load keeps coming while the workers are swapped one at a time.
    while not any("worker processes replaced in" in line for line in bot.lines):
        n = send_round(users, sent, n)
        await tg.wait_for(lambda n=n: replied(tg) >= n - 40, timeout=20)
        assert n < 40 * 200, "the workers were not replaced"
    for _ in range(5):
        n = send_round(users, sent, n)
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=30)
    swap = _line(bot, "worker processes replaced in")
    after = _pids(bot)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err
    result = tally(sent, tg.requests)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0), result
    assert set(before.values()).isdisjoint(after.values()), (before, after)
    assert "#0 pid" in err and "1 replaced" in err
    seconds = float(re.search(r"replaced in ([\d.]+) s", swap)[1])  # type: ignore[index]
    print(f"\nSIGHUP ({mode}): 2 workers replaced in {seconds:.2f} s with {n} messages sent")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(60)
async def test_a_poison_update_is_set_aside_after_three_deaths_while_other_chats_flow(
    tg: FakeTelegram, mode: str
) -> None:
    bot = await start_bot(tg, "poison_bot:router", "--workers", "2", *MODES[mode], cwd=BOTS)
    poisoner = tg.user("Mallory")
    poisoner.send("poison")
    sent = send_load(tg, chats=20, per_chat=10)
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=30)
    await bot.wait_for_line("set aside as poison", timeout=20)
    poisoner.send("after")
    await tg.wait_for_replies(poisoner, 1, timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err
    assert [m["text"] for m in tg.replies(poisoner)] == ["after"]
    result = tally(sent, tg.requests)
    assert (result.lost, result.violations) == (0, 0)
    assert err.count("was killed by SIGKILL with") == 3, err
    assert ", 1 quarantined;" in err and "; 1 poison" in err
    assert unfinished(tg, mode) == 0
    uid = int(re.search(r"update (\d+) was in flight at 3 deaths", err)[1])  # type: ignore[index]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "journal", "list", "--token", tg.token,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, lerr = await asyncio.wait_for(proc.communicate(), 30)
    listing = out.decode()
    if mode == "journal":
        assert proc.returncode == 0, lerr
        assert "1 quarantined" in listing and f"  {uid}  3 attempts" in listing, listing
    else:  # no journal: nothing to keep it in; it was confirmed, with an error line
        assert f"update {uid} was being handled at 3 deaths of its worker process; it is " \
            "confirmed" in err  # fmt: skip


@pytest.mark.timeout(60)
async def test_a_start_up_crash_loop_exits_2_with_the_workers_error(tg: FakeTelegram) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", "worker_only_broken_bot:router",
        "--workers", "2", "--api-url", tg.api_url, "--token", tg.token,
        cwd=BOTS, env={**os.environ, "BROKEN_UNDER": str(os.getpid())},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, raw = await asyncio.wait_for(proc.communicate(), 40)
    err = raw.decode()
    assert proc.returncode == 2, err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("tgrunner: importing 'worker_only_broken_bot' raised RuntimeError: "
                           "the database at db.example:5432 is down"), err  # fmt: skip
    # The user's own frames, once; no tgrunner frame.
    assert err.count("Traceback (most recent call last)") == 1, err
    assert 'worker_only_broken_bot.py", line' in err and "site-packages" not in err
    frames = err.partition("Traceback")[2].partition("RuntimeError")[0]
    assert PACKAGE not in frames, frames  # the checkout's own folder may be called tgrunner
    # Not respawned forever: each slot at most 3 times.
    assert 3 <= err.count("failed to start (") <= 6, err
    assert tg.calls("getUpdates") == []


@pytest.mark.timeout(60)
async def test_a_hung_worker_is_replaced_and_its_updates_redone_while_others_flow(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    bot = await start_bot(
        tg, "worker_bot:router", "--workers", "2", "--heartbeat-timeout", "3", cwd=BOTS,
        env={"WORKER_BOT_DIR": str(tmp_path)},
    )  # fmt: skip
    [stuck, neighbour] = _users_in_slot(tg, 0, 2, "stuck")
    others = _users_in_slot(tg, 1, 4, "free")
    stuck.send("hang-once")  # blocks its worker's event loop, the first time
    hung_at = time.time()
    neighbour.send("behind the blocked loop")
    sent = {u.chat.id: [f"{u.chat.id}-{i}" for i in range(10)] for u in others}
    for i in range(10):
        for u in others:
            u.send(sent[u.chat.id][i])
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=10)
    flowed_at = time.time()
    assert tg.replies(stuck) == [], "the other worker's chats flowed while this one hung"
    await tg.wait_for_replies(stuck, 1, timeout=20)
    await tg.wait_for_replies(neighbour, 1, timeout=20)
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err
    assert [m["text"] for m in tg.replies(stuck)] == ["recovered"]
    assert [m["text"] for m in tg.replies(neighbour)] == ["behind the blocked loop"]
    hang = _line(bot, "sent no heartbeat for 3 s")
    ready = next(line for line in bot.lines if "worker 0 (pid" in line and " ready in " in line
                 and _at(line) > _at(hang))  # fmt: skip
    print(
        f"\nhung worker: others all answered {flowed_at - hung_at:.2f} s into the hang; seen "
        f"hung {_at(hang) - hung_at:.2f} s after it began (3 s after its last heartbeat), its "
        f"replacement ready {_at(ready) - _at(hang):.2f} s later"
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(120)
async def test_five_sigkills_of_random_workers_lose_nothing_and_keep_order(
    tg: FakeTelegram, mode: str
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    concurrency = 20
    sent = send_load(tg, chats=30, per_chat=40)
    total = sum(len(v) for v in sent.values())
    bot = await start_bot(
        tg, "echo_bot:router", "--workers", "2", "--concurrency", str(concurrency),
        *MODES[mode], cwd=BOTS,
    )  # fmt: skip
    detected: list[float] = []
    serving: list[float] = []
    settled = {chat: 0 for chat in sent}
    for kill in range(5):
        # What the last death put back in flight is done first: a chat's first unanswered
        # message and the next. Three deaths of one worker with one update in flight make it
        # poison, rightly (an OOM kill looks the same), and this test is about random kills.
        await tg.wait_for(
            lambda s=settled: all(n >= s[c] for c, n in frontier(sent, tg.requests).items()),
            timeout=30,
        )
        point = int(total * (kill + rng.uniform(0.2, 0.8)) / 6)
        await tg.wait_for(lambda point=point: replied(tg) >= point, timeout=30)
        slot, pid = rng.choice(sorted(_pids(bot).items()))
        mark = len(bot.lines)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        settled = {c: min(n + 2, len(sent[c])) for c, n in frontier(sent, tg.requests).items()}
        died = await _wait_line(bot, rf"\(pid {pid}\) was killed by SIGKILL", mark)
        ready = await _wait_line(bot, rf"worker {slot} \(pid \d+\) ready in", mark)
        detected.append(_at(died) - killed_at)
        serving.append(_at(ready) - _at(died))
    try:
        await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=60)
    except TimeoutError:
        raise AssertionError(
            f"seed {seed}: no reply to {missing(sent, tg.requests)[:10]}\n{bot.log[-8000:]}"
        ) from None
    bot.send_signal(signal.SIGTERM)
    code, err = await bot.finish()
    assert code == 0, err
    assert "Traceback" not in err
    result = tally(sent, tg.requests)
    assert (result.lost, result.violations) == (0, 0), result
    # Each death redoes at most what its worker had in flight: at most the concurrency.
    assert result.duplicates <= 5 * concurrency, result
    print(
        f"\n5 SIGKILLs ({mode}): deaths seen in {max(detected) * 1000:.0f} ms at most "
        f"(log timestamps: ms), replacements serving {max(serving):.2f} s after at most; "
        f"{result.duplicates} duplicates of {total}"
    )
    assert max(detected) <= 0.5 and max(serving) <= 2.0, (detected, serving)


async def _wait_line(bot: BotProcess, pattern: str, after: int) -> str:
    """The first log line from the ``after``-th on that matches ``pattern``, once it came."""
    found = re.compile(pattern)
    await bot.wait_for_line(found, timeout=15, after=after)
    return next(line for line in bot.lines[after:] if found.search(line))


@pytest.mark.timeout(60)
async def test_new_code_that_cannot_start_keeps_the_old_workers_then_a_crash_loop_stops(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    env = {"WORKER_BOT_DIR": str(tmp_path)}
    bot = await start_bot(tg, "flaky_start_bot:router", "--workers", "2", cwd=BOTS, env=env)
    alice = tg.user("Alice")
    alice.send("one")
    await tg.wait_for_replies(alice, 1, timeout=20)
    (tmp_path / "broken").touch()  # the next import of the bot fails
    mark = len(bot.lines)
    bot.send_signal(signal.SIGHUP)
    await bot.wait_for_line("SIGHUP: a new worker process cannot start", timeout=30, after=mark)
    alice.send("two")  # the old workers still serve
    await tg.wait_for_replies(alice, 2, timeout=20)
    # A worker that dies now cannot be restarted: after 3 tries, tgrunner stops with exit 2.
    os.kill(next(iter(_pids(bot).values())), signal.SIGKILL)
    code, err = await bot.finish()
    assert code == 2, err
    assert (
        err.rstrip()
        .splitlines()[-1]
        .startswith(
            "tgrunner: importing 'flaky_start_bot' raised RuntimeError: the new code is broken"
        )
    )
    assert err.count("Traceback (most recent") == 1, err  # the user's frames, once
    assert [m["text"].partition(" from ")[0] for m in tg.replies(alice)] == ["one", "two"]


@pytest.mark.timeout(90)
async def test_supervisor_crashes_are_not_blamed_on_the_update_a_worker_runs(
    tg: FakeTelegram,
) -> None:
    """With workers a handler cannot crash the supervisor: three SIGKILLs of it while an
    update runs in a worker do not quarantine the update, and the next start handles it."""
    alice = tg.user("Alice")
    alice.send("work")
    for run in range(1, 5):
        bot = await start_bot(tg, "slow_bot:router", "--workers", "2", cwd=BOTS)
        await tg.wait_for_replies(alice, run, timeout=20)  # "started": it runs in a worker
        bot.kill()
        code, err = await bot.finish()  # once the workers, holding its stderr, are gone too
        assert code == -signal.SIGKILL, err
        assert "quarantined" not in err, err
    assert [m["text"] for m in tg.replies(alice)] == ["started"] * 4
    assert journaled(tg) == 1
