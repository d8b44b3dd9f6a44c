"""grammY accepts FakeTelegram: its ``Api``, from Node, calls the representative methods.

``grammy/fidelity.js`` runs as a subprocess against a fake served on this test's loop; the test
plays the user (the first message, and a press on the button the script sends) and checks what
the script printed. grammY does not validate what it receives (its types are TypeScript
declarations, gone at run time), so every result it got is validated here with aiogram's models,
and walked for fields aiogram does not know, as in ``test_fidelity_aiogram``. Each result must
also be exactly the JSON the fake recorded for that call.

grammY is installed once with npm into a scratch folder of the temp dir, named by a hash of
``grammy/package.json``. The test skips when Node ≥ 18 or npm is missing, or when the install
fails (offline).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiogram.methods
import pytest
from aiogram.types import ChatFullInfo, Message, StarTransactions, Update, UserChatBoosts
from pydantic import TypeAdapter
from test_fidelity_aiogram import unknown_fields

from tgrunner.testing import FakeTelegram, RecordedRequest

GRAMMY = Path(__file__).with_name("grammy")
INSTALL_TIMEOUT = 240.0
SCRIPT_TIMEOUT = 30.0

# As uploaded by grammy/fidelity.js.
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
MENU = {
    "inline_keyboard": [
        [
            {"text": "Ping", "callback_data": "ping"},
            {"text": "Docs", "url": "https://core.telegram.org/bots/api"},
        ]
    ]
}


def _run(*argv: str, cwd: Path | None = None, timeout: float) -> tuple[int, str, str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def _installed(home: Path) -> bool:
    return (home / "node_modules" / "grammy" / "package.json").is_file()


@pytest.fixture
def grammy() -> tuple[str, Path]:
    """``node``'s path and the scratch folder grammY is installed in (installing it when
    missing); skips the test when that is impossible here."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("grammY needs Node.js and npm, and they are not on PATH")
    code, version, _ = _run(node, "--version", timeout=30)
    major = version.strip().lstrip("v").split(".")[0]
    if code != 0 or not major.isdigit() or int(major) < 18:
        pytest.skip(f"the grammY script needs Node.js >= 18 (for fetch), found {version.strip()}")
    manifest = (GRAMMY / "package.json").read_bytes()
    digest = hashlib.sha256(manifest).hexdigest()[:16]
    home = Path(tempfile.gettempdir()) / f"tgrunner-grammy-{digest}"
    if _installed(home):
        return node, home
    # Installed beside and renamed into place: a concurrent run never sees half an install.
    staging = Path(tempfile.mkdtemp(prefix=f"{home.name}.", dir=home.parent))
    try:
        (staging / "package.json").write_bytes(manifest)
        argv = (npm, "install", "--no-audit", "--no-fund", "--ignore-scripts")
        try:
            code, _, err = _run(*argv, cwd=staging, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install of grammY took over {INSTALL_TIMEOUT:.0f} s (offline?)")
        if code != 0:
            # npm's first error lines name the cause (ECONNREFUSED, ENOTFOUND, ...).
            cause = [line for line in err.splitlines() if line.startswith("npm error")][:4]
            pytest.skip(f"npm install of grammY failed (offline?): {' | '.join(cause) or err}")
        if not _installed(home):
            # A broken leftover would block the rename; a finished install by a concurrent run
            # is kept.
            shutil.rmtree(home, ignore_errors=True)
            with contextlib.suppress(OSError):
                staging.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    assert _installed(home), f"grammY is not in {home} after npm install"
    return node, home


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses connections: a webhook that never reaches anything."""
    with socket.socket() as sock:
        # Bound but not listening: the port stays ours and every connect is refused.
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def parse(method: str, result: Any) -> Any:
    """``result`` parsed with aiogram's model for what ``method`` returns; no unknown field."""
    returning = getattr(aiogram.methods, method[0].upper() + method[1:]).__returning__
    parsed = TypeAdapter(returning).validate_python(result)
    assert unknown_fields(parsed, method) == []
    return parsed


async def run_script(
    node: str,
    home: Path,
    tg: FakeTelegram,
    env: dict[str, str],
    on_edit: Callable[[RecordedRequest], object],
) -> Any:
    """Run grammy/fidelity.js with ``env``; call ``on_edit`` once the script has edited its
    menu (it then long-polls for a press). Returns the script's JSON output."""
    proc = await asyncio.create_subprocess_exec(
        node,
        str(GRAMMY / "fidelity.js"),
        env={**os.environ, **env, "GRAMMY_HOME": str(home)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # Read while waiting, so a full pipe never blocks the script.
    output = asyncio.ensure_future(proc.communicate())
    edited = asyncio.ensure_future(tg.wait_for_call("editMessageText", timeout=SCRIPT_TIMEOUT))
    try:
        try:
            await asyncio.wait({output, edited}, return_when=asyncio.FIRST_COMPLETED)
            if edited.done():
                on_edit(edited.result())
            async with asyncio.timeout(SCRIPT_TIMEOUT):
                out, err = await asyncio.shield(output)
        except TimeoutError:
            proc.kill()
            _, err = await output
            raise AssertionError(f"fidelity.js hung; its stderr:\n{err.decode()}") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for task in (output, edited):
            task.cancel()
        await asyncio.gather(output, edited, return_exceptions=True)
    assert proc.returncode == 0, f"fidelity.js exited {proc.returncode}:\n{err.decode()}"
    return json.loads(out)


# The first run installs grammY with npm (the fixture's time counts against this limit).
@pytest.mark.timeout(300)
async def test_grammy_api_calls_the_fake(grammy: tuple[str, Path], refused_url: str) -> None:
    node, home = grammy
    async with FakeTelegram() as tg:
        alice = tg.user("Alice", username="alice_a")
        team = tg.supergroup("Team", members=[alice])
        start = alice.command("start")
        env = {
            "API_URL": tg.api_url,
            "TOKEN": tg.token,
            "CHAT_ID": str(alice.id),
            "GROUP_ID": str(team.id),
            "WEBHOOK_URL": refused_url,
        }
        # Pressed on the menu as the script's edit left it.
        results = await run_script(
            node, home, tg, env, lambda edit: alice.press(edit.response, data="ping")
        )
        records = tg.calls()

    # grammY made every call, in order, and got exactly what the fake answered.
    download = base64.b64decode(results.pop("download"))
    assert [(e["method"], e["result"]) for e in results.values()] == [
        (r.method, r.response) for r in records
    ]
    assert all(r.ok for r in records)
    got = {label: parse(e["method"], e["result"]) for label, e in results.items()}

    assert got["getMe"].id == tg.bot_user["id"]
    [update] = got["getUpdates"]
    assert isinstance(update, Update)
    assert update.message is not None
    assert update.message.message_id == start["message_id"]
    assert update.message.text == "/start"

    sent = got["sendMessage"]
    assert sent.chat.id == alice.id
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.message_id == start["message_id"]
    assert results["sendMessage"]["result"]["reply_markup"] == MENU

    assert got["sendPhoto"].caption == "a dot"
    assert got["getFile"].file_id == got["sendPhoto"].photo[-1].file_id
    assert got["getFile"].file_size == len(PHOTO)
    assert download == PHOTO

    edited = got["editMessageText"]
    assert isinstance(edited, Message)
    assert edited.message_id == sent.message_id
    assert edited.text == "Pick again"
    assert edited.edit_date is not None

    [press] = got["getUpdatesPress"]
    assert press.callback_query is not None
    assert press.callback_query.data == "ping"
    assert press.callback_query.from_user.id == alice.id
    assert got["answerCallbackQuery"] is True
    [answer] = (r for r in records if r.method == "answerCallbackQuery")
    assert answer.params == {"callback_query_id": press.callback_query.id, "text": "pong!"}

    assert isinstance(got["getChat"], ChatFullInfo)
    assert (got["getChat"].id, got["getChat"].type) == (alice.id, "private")
    assert (got["getChatGroup"].id, got["getChatGroup"].title) == (team.id, "Team")

    assert got["setWebhook"] is True
    info = got["getWebhookInfo"]
    assert info.url == refused_url
    assert info.max_connections == 7
    # The press was fetched but not confirmed: still pending.
    assert info.pending_update_count == 1
    assert got["deleteWebhook"] is True
    assert got["getWebhookInfoAfter"].url == ""
    assert got["getWebhookInfoAfter"].pending_update_count == 0

    assert isinstance(got["getStarTransactions"], StarTransactions)
    assert isinstance(got["getUserChatBoosts"], UserChatBoosts)
    assert all(isinstance(c.command, str) for c in got["getMyCommands"])
