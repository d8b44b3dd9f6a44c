"""``tgrunner broadcast status|pause|resume|cancel``: against a broadcast this test sends over
real HTTP to FakeTelegram, from this process (in a thread) and from a process of its own. A
pause stops the sends within a second, a resume of a paused broadcast is seen at once (its
sender waits on the outbox's doorbell, not on a timer), a cancel ends it; bad ids and a
missing outbox are one line and exit code 2."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcast_support import add_chats, delivered
from cli_support import in_process, in_subprocess, in_thread
from tgrunner.client.bot import Bot
from tgrunner.flood.broadcast import Broadcast, Broadcaster, bot_sender
from tgrunner.flood.outbox import Outbox
from tgrunner.testing import FakeTelegram, Faults

pytestmark = pytest.mark.timeout(30)

WINDOW = 3
LATENCY = 0.02  # seconds per send: about 150 sends a second with the window


@pytest.fixture
async def caster(tg: FakeTelegram) -> AsyncIterator[Broadcaster]:
    """A broadcaster of the test bot's outbox in the data dir; sends take LATENCY."""
    tg.faults = Faults(latency=LATENCY, methods=frozenset({"sendMessage"}))
    async with Bot(tg.token, api_url=tg.api_url) as bot:
        with Outbox.for_bot(bot.id) as outbox:
            async with Broadcaster(outbox, bot_sender(bot), window=WINDOW) as b:
                yield b


def sends(tg: FakeTelegram) -> int:
    return len(tg.calls("sendMessage"))


async def started(tg: FakeTelegram, caster: Broadcaster, n: int) -> Broadcast:
    news = await caster.start(add_chats(tg, n), "news")
    await tg.wait_for(lambda: sends(tg) >= 10, timeout=10)
    return news


async def test_pause_resume_and_cancel_a_running_broadcast(
    tg: FakeTelegram, caster: Broadcaster, capsys: pytest.CaptureFixture[str]
) -> None:
    news = await started(tg, caster, 2000)
    code, out, err = await in_thread(capsys, "broadcast", "pause", str(news.id))
    paused_at = time.time()
    assert (code, err) == (0, ""), err
    assert out.startswith(f"broadcast {news.id} paused: ")
    # What was in flight ends; then nothing leaves. Showing that nothing more comes takes a
    # wait: 0.5 s is 75 sends at this pace.
    await asyncio.sleep(0.5)
    before = sends(tg)
    assert before < 1000  # it stopped long before the end
    last = max(r.time for r in tg.calls("sendMessage"))
    assert last - paused_at < 1.0  # the sends in flight ended within a second
    await asyncio.sleep(0.3)
    assert sends(tg) == before
    assert (await news.progress()).state == "paused"

    code, out, err = await in_thread(capsys, "broadcast", "status", str(news.id))
    assert code == 0, err
    assert "state:     paused, held by pid" in out and "pending:" in out

    code, out, err = await in_thread(capsys, "broadcast", "resume")  # the only live one
    resumed_at = time.time()
    assert (code, err) == (0, ""), err
    await tg.wait_for(lambda: sends(tg) > before, timeout=5)
    first = min(r.time for r in tg.calls("sendMessage")[before:])
    assert first - resumed_at < 0.5  # the doorbell, not a poll a second later

    code, out, err = await in_thread(capsys, "broadcast", "cancel", str(news.id))
    assert (code, err) == (0, ""), err
    done = await news.wait()
    assert done.state == "cancelled" and done.pending > 0 and done.inflight == 0
    assert set(delivered(tg).values()) == {1}
    assert done.sent == sum(delivered(tg).values())

    code, _, err = await in_thread(capsys, "broadcast", "resume", str(news.id))
    assert code == 1
    assert err == (
        f"tgrunner: broadcast {news.id} is cancelled: only a paused broadcast can be resumed\n"
    )


async def test_pause_from_another_process(tg: FakeTelegram, caster: Broadcaster) -> None:
    news = await started(tg, caster, 2000)
    code, out, err = await in_subprocess("broadcast", "pause", str(news.id))
    assert (code, err) == (0, ""), err
    assert out.startswith(f"broadcast {news.id} paused: ")
    await asyncio.sleep(0.5)  # in flight when paused: ends; then nothing more (see above)
    before = sends(tg)
    await asyncio.sleep(0.3)
    assert sends(tg) == before < 2000
    code, _, err = await in_subprocess("broadcast", "resume", str(news.id))
    assert (code, err) == (0, ""), err
    await tg.wait_for(lambda: sends(tg) > before, timeout=5)
    await news.cancel()
    assert (await news.wait()).state == "cancelled"


async def test_status_lists_the_broadcasts(
    tg: FakeTelegram, caster: Broadcaster, capsys: pytest.CaptureFixture[str]
) -> None:
    tg.faults = None
    chats = add_chats(tg, 20)
    first = await (await caster.start(chats, "one", parse_mode="HTML")).wait()
    tg.faults = Faults(latency=LATENCY, methods=frozenset({"sendMessage"}))
    running = await started(tg, caster, 1000)
    code, out, err = await in_thread(capsys, "broadcast")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("broadcasts.sqlite: 2 broadcast(s) shown, newest first (1 live)")
    assert lines[1].split()[:2] == [str(running.id), "running"]
    assert lines[2].split()[:3] == [str(first.id), "done", "20/20"]
    code, out, err = await in_thread(capsys, "broadcast", "status", str(first.id))
    assert code == 0, err
    assert "sends:     'one' with parse_mode" in out
    assert "state:     done, ended " in out and "sent:      20" in out
    code, out, err = await in_thread(capsys, "broadcast", "status", str(running.id))
    assert "state:     running, sent by pid" in out
    assert "rate:" in out
    await running.cancel()
    await running.wait()


def test_no_outbox_and_bad_ids_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out, err = in_process(capsys, "broadcast", "status")
    assert (code, out) == (2, "")
    assert err == f"tgrunner: {data_dir} holds the broadcasts of 0 bots (none); name one with "\
        "--bot-id or --token, or pass --data-dir.\n"  # fmt: skip
    code, _, err = in_process(capsys, "broadcast", "pause", "--bot-id", "123")
    assert code == 2 and err.count("\n") == 1 and "Bot 123 has no broadcasts" in err
    code, _, err = in_process(capsys, "broadcast", "status", "abc")
    assert code == 2 and err.count("\n") == 1 and "'abc' is not a broadcast id" in err
    with Outbox.for_bot(123) as outbox:
        outbox.create([1, 2], text="hi").release()
        outbox.create([3], text="hi").release()
    code, _, err = in_process(capsys, "broadcast", "status", "7")
    assert (code, err) == (2, f"tgrunner: There is no broadcast 7 in {outbox.path}.\n")
    code, _, err = in_process(capsys, "broadcast", "cancel")
    assert code == 2 and "has 2 running or paused broadcasts (1, 2): name the one" in err
    code, out, err = in_process(capsys, "broadcast", "cancel", "2", "--bot-id", "123")
    assert (code, err) == (0, "") and out.startswith("broadcast 2 cancelled: 0/1 done")
    code, out, err = in_process(capsys, "broadcast", "pause")  # the only live one: 1
    assert code == 0 and out.startswith("broadcast 1 paused")
    code, out, err = in_process(capsys, "broadcast", "resume", "1")
    assert out.splitlines()[1] == "  no process holds it: it continues when the bot starts again"
