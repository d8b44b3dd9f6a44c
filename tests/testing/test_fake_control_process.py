"""``tgrunner fake-telegram`` and ``tgrunner run`` as two processes, the bot's users played over
the control API alone, with plain HTTP; and the command's own options: --help, --port checks
and the control secret."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from control_client import ENV, Control, fake_telegram
from processes import BotProcess

pytestmark = pytest.mark.slow

BOTS = Path(__file__).parents[1] / "bots"


async def test_a_script_drives_a_bot_run_by_tgrunner_over_the_control_api() -> None:
    async with fake_telegram() as fake, aiohttp.ClientSession() as session:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.api_url)
        assert fake.control_url == f"{fake.api_url}/control"
        bot_proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tgrunner", "run", "keyboard_bot:router",
            "--api-url", fake.api_url, "--token", fake.token, "--no-journal",
            cwd=BOTS,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=ENV,
        )  # fmt: skip
        bot = BotProcess(bot_proc)
        try:
            control = Control(session, fake.api_url)
            alice = await control.user("Alice", username="alice")
            # Sent before the bot may even poll: the long poll waits for its answer.
            sent = await control.ok("POST", "/send", {"user": "alice", "text": "/start"})
            [menu] = (await control.replies(alice["chat_id"], sent["cursor"], wait=50))["replies"]
            assert menu["text"] == "Hello, Alice! Pick one:"
            assert [b["text"] for b in menu["buttons"]] == ["Yes", "No", "Later", "Docs"]

            press = {"user": "alice", "message_id": menu["message_id"], "button": 1, "wait": 10}
            pressed = await control.ok("POST", "/press", press)
            assert pressed["answered"] is True
            assert pressed["answer"]["text"] == "Noted: no"
            [edited] = (await control.replies(alice["chat_id"], pressed["cursor"]))["replies"]
            assert (edited["message_id"], edited["text"]) == (menu["message_id"], "You picked no.")
            assert edited["edited"] is True

            sent = await control.ok("POST", "/send", {"user": alice["id"], "text": "bye"})
            [echo] = (await control.replies(alice["chat_id"], sent["cursor"]))["replies"]
            assert echo["text"] == "bye"
        finally:
            if bot_proc.returncode is None:
                bot.send_signal(signal.SIGTERM)
            code, log = await bot.finish(timeout=30)
        assert code == 0, log
        assert "Traceback" not in log
        code, stderr = await fake.stop()
    assert code == 0, stderr
    assert "Traceback" not in stderr


async def test_off_loopback_a_generated_secret_is_required() -> None:
    async with (
        fake_telegram("--host", "0.0.0.0", printed=4) as fake,
        aiohttp.ClientSession() as session,
    ):
        assert fake.secret is not None and len(fake.secret) >= 20
        local = "http://127.0.0.1:" + fake.api_url.rsplit(":", 1)[1]
        status, body = await Control(session, local)("GET")
        assert status == 401
        assert "X-Control-Secret" in body["description"]
        index = await Control(session, local, secret=fake.secret).ok("GET")
        assert index["secret_required"] is True
        code, stderr = await fake.stop()
    assert code == 0
    assert "is not loopback" in stderr


async def test_the_secret_can_come_from_the_environment() -> None:
    env = {**ENV, "TGRUNNER_CONTROL_SECRET": "from-env"}
    async with fake_telegram(env=env) as fake, aiohttp.ClientSession() as session:
        assert fake.secret is None  # given, so not printed
        assert (await Control(session, fake.api_url)("GET"))[0] == 401
        await Control(session, fake.api_url, secret="from-env").ok("GET")
        assert (await fake.stop())[0] == 0


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("port", "words"),
    [
        ("99999", "must be from 0 to 65535 (0: any free port), not 99999"),
        ("65536", "not 65536"),
        ("-1", "not -1"),
        ("http", "must be a port number, not 'http'"),
    ],
)
async def test_a_bad_port_is_one_line_and_exit_2(port: str, words: str) -> None:
    code, out, err = await run_cli("-m", "tgrunner", "fake-telegram", "--port", port)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("tgrunner fake-telegram: argument --port: ")
    assert words in err
    assert "Traceback" not in err


async def test_a_bad_port_of_the_module_entry_point_is_one_line_too() -> None:
    code, _, err = await run_cli("-m", "tgrunner.testing.fake.cli", "--port=99999")
    assert (code, err.count("\n")) == (2, 1), err
    assert "Traceback" not in err


async def test_help_documents_the_control_api() -> None:
    code, out, err = await run_cli("-m", "tgrunner", "fake-telegram", "--help")
    assert code == 0, err
    for words in (
        "Control API: http://127.0.0.1:8081/control",
        "POST /control/users",
        "POST /control/send",
        "POST /control/press",
        "GET  /control/chats/CHAT_ID/replies?after=CURSOR&wait=SECONDS",
        "TGRUNNER_CONTROL_SECRET",
        "X-Control-Secret",
        "8081)",
        "curl -s localhost:8081/control/send",
    ):
        assert words in out, words
    for markup in ("``", ":mod:", ":class:", ":meth:", ".. code"):
        assert markup not in out


@pytest.mark.timeout(60)
async def test_webhook_pace_telegram_waits_2_s_before_the_first_retry() -> None:
    attempts: list[float] = []
    second = asyncio.Event()

    async def refuse(request: web.Request) -> web.Response:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) == 2:
            second.set()
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            fake_telegram("--webhook-pace", "telegram") as fake,
            aiohttp.ClientSession() as session,
        ):
            hook = {"url": f"http://127.0.0.1:{port}/hook"}
            async with session.post(f"{fake.api_url}/bot{fake.token}/setWebhook", json=hook) as r:
                assert (await r.json())["ok"] is True
            control = Control(session, fake.api_url)
            await control.user("Alice", username="alice")
            await control.ok("POST", "/send", {"user": "alice", "text": "hi"})
            async with asyncio.timeout(20):
                await second.wait()
            assert attempts[1] - attempts[0] >= 1.9, attempts
    finally:
        await runner.cleanup()
