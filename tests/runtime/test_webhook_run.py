"""``tgrunner run --webhook-url`` against FakeTelegram delivering by webhook, as Telegram does:
each update is journaled before its 200, per-chat order holds, the secret is generated and
kept, SIGKILLs lose nothing, and the same for --workers 2, aiogram and PTB bots unchanged."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import stat
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from processes import end_started_bots, start_bot
from replies import frontier, replied, send_load, tally
from servers import free_port
from tgrunner.testing import FakeTelegram

BOTS = Path(__file__).parents[1] / "bots"
HOOK = ("--webhook-url", "http://127.0.0.1:0/tg/hook", "--listen", "127.0.0.1:0")

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> None:  # type: ignore[misc]
    yield
    await end_started_bots()


BOT_TARGETS = {
    "native": ("echo_bot:router", ()),
    "native --workers 2": ("echo_bot:router", ("--workers", "2")),
    "aiogram": ("aiogram_quick:dp", ()),
    "aiogram --workers 2": ("aiogram_quick:dp", ("--workers", "2")),
    "ptb": ("ptb_echobot:main", ()),
    "ptb --workers 2": ("ptb_echobot:main", ("--workers", "2")),
}


@pytest.mark.parametrize("kind", BOT_TARGETS)
@pytest.mark.timeout(120)
async def test_a_bot_by_webhook_answers_every_chat_in_order(tg: FakeTelegram, kind: str) -> None:
    target, extra = BOT_TARGETS[kind]
    sent = send_load(tg, chats=20, per_chat=10)
    env = {"BOT_TOKEN": tg.token}
    bot = await start_bot(tg, target, *HOOK, *extra, cwd=BOTS, env=env, webhook=True)
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=60)
    # A reply may reach FakeTelegram before the 200 of its update, on another connection.
    await tg.wait_for(lambda: tg.pending_updates == 0, timeout=10)
    err = await bot.stop()
    result = tally(sent, tg.requests)
    assert (result.lost, result.violations, result.duplicates) == (0, 0, 0), result
    assert "webhook http://127.0.0.1:" in err  # the start-up line names the source
    hook = tg.calls("setWebhook")[-1].params
    assert hook["url"].startswith("http://127.0.0.1:") and hook["url"].endswith("/tg/hook")
    secret = Path(os.environ["TGRUNNER_DATA_DIR"]) / tg.token.partition(":")[0] / "webhook-secret"
    assert hook["secret_token"] == secret.read_text().strip()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert tg.calls("deleteWebhook") == []  # kept, so Telegram queues while the bot is down


@pytest.mark.timeout(150)
async def test_sigkills_during_a_webhook_run_lose_nothing_and_keep_order(tg: FakeTelegram) -> None:
    sent = send_load(tg, chats=30, per_chat=20)
    total = sum(len(v) for v in sent.values())
    for kill in range(3):
        bot = await start_bot(tg, "echo_bot:router", *HOOK, cwd=BOTS, webhook=True)
        point = total * (kill + 1) // 4
        await tg.wait_for(lambda point=point: replied(tg) >= point, timeout=60)
        bot.kill()
        await bot.finish()
    bot = await start_bot(tg, "echo_bot:router", *HOOK, cwd=BOTS, webhook=True)
    await tg.wait_for(lambda: min(frontier(sent, tg.requests).values()) == 20, timeout=60)
    await tg.wait_for(lambda: tg.pending_updates == 0, timeout=30)
    await bot.stop()
    result = tally(sent, tg.requests)
    assert (result.lost, result.violations) == (0, 0), result
    # A kill repeats at most what was journaled and not yet marked finished on disk.
    assert result.duplicates <= 3 * total // 4, result


@pytest.mark.timeout(60)
async def test_a_given_secret_is_used_and_delete_on_stop_removes_the_webhook(
    tg: FakeTelegram,
) -> None:
    bot = await start_bot(
        tg, "echo_bot:router", *HOOK, "--webhook-secret", "my_Secret-1",
        "--delete-webhook-on-stop", "--max-connections", "7", cwd=BOTS, webhook=True,
    )  # fmt: skip
    alice = tg.user("Alice")
    alice.send("hi")
    await tg.wait_for_replies(alice, 1, timeout=20)
    await bot.stop()
    hook = tg.calls("setWebhook")[-1].params
    assert (hook["secret_token"], int(hook["max_connections"])) == ("my_Secret-1", 7)
    assert len(tg.calls("deleteWebhook")) == 1


@pytest.mark.timeout(60)
async def test_direct_mode_answers_telegram_once_the_handler_ended(tg: FakeTelegram) -> None:
    bot = await start_bot(
        tg, "slow_bot:router", *HOOK, "--webhook-mode", "direct", cwd=BOTS, webhook=True
    )
    alice = tg.user("Alice")
    alice.send("work")
    await tg.wait_for_replies(alice, 1, timeout=20)  # "started"; the handler sleeps on
    assert tg.pending_updates == 1  # not answered while it runs
    bot.kill()
    await bot.finish()
    sent = send_load(tg, chats=10, per_chat=5)
    bot = await start_bot(
        tg, "echo_bot:router", *HOOK, "--webhook-mode", "direct", cwd=BOTS, webhook=True
    )
    await tg.wait_for(lambda: tally(sent, tg.requests).lost == 0, timeout=30)
    await tg.wait_for(lambda: tg.pending_updates == 0, timeout=10)
    await bot.stop()
    result = tally(sent, tg.requests)
    assert (result.lost, result.violations, result.duplicates) == (0, 0, 0), result


@pytest.mark.timeout(120)
async def test_direct_mode_answers_a_poison_update_once_it_is_quarantined(
    tg: FakeTelegram,
) -> None:
    """Never answered while it kills the bot, Telegram resends it; once quarantined, its
    resend is answered at once, so Telegram stops, and the bot serves on."""
    mallory, alice = tg.user("Mallory"), tg.user("Alice")
    mallory.send("poison")
    for _death in range(3):
        bot = await start_bot(
            tg, "poison_bot:router", *HOOK, "--webhook-mode", "direct", cwd=BOTS, webhook=True
        )
        code, err = await bot.finish()
        assert code == -signal.SIGKILL, err
    bot = await start_bot(
        tg, "poison_bot:router", *HOOK, "--webhook-mode", "direct", cwd=BOTS, webhook=True
    )
    alice.send("hello")
    await tg.wait_for_replies(alice, 1, timeout=20)
    await tg.wait_for(lambda: tg.pending_updates == 0, timeout=20)
    err = await bot.stop()
    assert "quarantined" in err
    assert tg.replies(mallory) == []


@pytest.mark.timeout(60)
async def test_a_webhook_bot_waits_start_timeout_for_an_unreachable_api() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", "echo_bot:router", "--token", "1:AAx",
        "--api-url", dead, *HOOK, "--start-timeout", "2", cwd=BOTS,
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 40)
    text = err.decode()
    assert proc.returncode == 2, text
    assert time.monotonic() - began >= 1.5
    assert "getMe failed" in text and "retrying" in text, text
    assert (
        text.rstrip().splitlines()[-1].startswith(f"tgrunner: Cannot reach the Bot API at {dead}")
    ), text


@pytest.mark.timeout(60)
async def test_the_start_line_of_a_webhook_bot_names_it(tg: FakeTelegram) -> None:
    bot = await start_bot(tg, "echo_bot:router", *HOOK, "--workers", "2", cwd=BOTS, webhook=True)
    # The webhook is set once the workers are ready: the start line follows at once.
    await bot.wait_for_line(" · webhook http://127.0.0.1:", timeout=20)
    err = await bot.stop()
    assert err.index("worker processes ready") < err.index("webhook set to"), err
    username = tg.state.primary.user["username"]
    assert f"@{username} (id " in err, err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://bot.example.org/hook", "Telegram delivers webhooks only to https:// URLs"),
        ("https://bot.example.org:1234/hook", "only to ports 443, 80, 88 and 8443, not 1234"),
    ],
)
@pytest.mark.timeout(60)
async def test_a_url_telegram_would_not_deliver_to_is_refused_at_once(url: str, says: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", "echo_bot:router", "--token", "1:AAx",
        "--webhook-url", url, cwd=BOTS,
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 40)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and says in lines[0], lines


REFUSALS = [
    ({"method": "GET"}, 405),
    ({"secret": None}, 401),
    ({"secret": "wrong-one"}, 401),
    ({"content_type": "text/plain"}, 415),
    ({"body": b"{not json"}, 400),
    ({"body": b'{"message": {}}'}, 400),
    ({"body": b"x" * (2 << 20)}, 413),
    ({"path": "/elsewhere"}, 404),
]


@pytest.mark.parametrize("kind", ["native", "native --workers 2", "aiogram", "ptb"])
@pytest.mark.timeout(120)
async def test_bad_requests_are_refused_and_the_bot_serves_on(tg: FakeTelegram, kind: str) -> None:
    target, extra = BOT_TARGETS[kind]
    env = {"BOT_TOKEN": tg.token}
    bot = await start_bot(tg, target, *HOOK, *extra, cwd=BOTS, env=env, webhook=True)
    log = await bot.wait_for_line(" · webhook http://127.0.0.1:", timeout=30)
    url = re.search(r"webhook (http://127\.0\.0\.1:\d+/tg/hook)", log)[1]  # type: ignore[index]
    secret = tg.calls("setWebhook")[-1].params["secret_token"]
    async with aiohttp.ClientSession() as session:
        for n, (how, status) in enumerate(REFUSALS):
            headers = {"Content-Type": how.get("content_type", "application/json")}
            if how.get("secret", secret) is not None:
                headers["X-Telegram-Bot-Api-Secret-Token"] = how.get("secret", secret)
            body = how.get("body", b'{"update_id": %d, "message": {}}' % (10**9 + n))
            data = io.BytesIO(body) if len(body) > 1 << 20 else body
            where = url.replace("/tg/hook", how.get("path", "/tg/hook"))
            async with session.request(
                how.get("method", "POST"), where, data=data, headers=headers
            ) as resp:
                assert resp.status == status, (how, resp.status, await resp.text())
    alice = tg.user("Alice")
    alice.send("still here")
    await tg.wait_for_replies(alice, 1, timeout=30)
    await bot.stop()
