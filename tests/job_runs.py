"""What the jobs' process tests share: ``tgrunner`` commands run from the test bots' folder
with FakeTelegram's token and URL in their environment, a running ``tgrunner worker``, and
reading the jobs' replies (``done: …``) and ``tgrunner jobs`` counts."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from processes import BotProcess, adopt
from tgrunner.testing import FakeTelegram

__all__ = [
    "BOTS",
    "PROCESSING",
    "ask",
    "check_replies",
    "counts",
    "job_replies",
    "processing",
    "sent",
    "start_worker",
    "tgrunner",
]

BOTS = Path(__file__).parent / "bots"
PROCESSING = "⏳ Processing…"
"""What the test bots answer at once, before their job's reply."""


async def tgrunner(*argv: str, tg: FakeTelegram, timeout: float = 60) -> tuple[int, str, str]:
    """``tgrunner ARGV`` from the bots' folder with the fake's token and URL in its
    environment: exit code, stdout, stderr."""
    env = {**os.environ, "TGRUNNER_TOKEN": tg.token, "TGRUNNER_API_URL": tg.api_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", *argv, cwd=BOTS, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def start_worker(tg: FakeTelegram, *argv: str) -> BotProcess:
    """``tgrunner worker ARGV`` running (token and URL in its environment), its stderr
    followed; ended by the fixture if the test does not."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TGRUNNER_TOKEN": tg.token,
           "TGRUNNER_API_URL": tg.api_url}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "worker", *argv, cwd=BOTS, env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return adopt(proc)


def sent(tg: FakeTelegram, method: str = "sendMessage") -> list[dict[str, Any]]:
    return [r.params for r in tg.calls(method) if r.ok]


def job_replies(tg: FakeTelegram) -> dict[str, dict[str, Any]]:
    """The jobs' replies (``done: …``) by text."""
    return {p["text"]: p for p in sent(tg) if str(p.get("text", "")).startswith("done: ")}


def processing(tg: FakeTelegram) -> int:
    return sum(p.get("text") == PROCESSING for p in sent(tg))


def ask(tg: FakeTelegram, count: int) -> dict[str, dict[str, Any]]:
    """``count`` messages from two users; the messages by text."""
    users = [tg.user("ann"), tg.user("bob")]
    return {f"q{i}": users[i % 2].send(f"q{i}") for i in range(count)}


def check_replies(tg: FakeTelegram, asked: dict[str, dict[str, Any]]) -> None:
    """Each message got exactly one job reply, in its chat, pointing at it."""
    replies = job_replies(tg)
    assert sorted(replies) == sorted(f"done: {t}" for t in asked), replies
    for text, message in asked.items():
        reply = replies[f"done: {text}"]
        assert int(reply["chat_id"]) == message["chat"]["id"]
        assert reply["reply_parameters"] == {
            "message_id": message["message_id"],
            "allow_sending_without_reply": True,
        }, reply
    assert len([p for p in sent(tg) if str(p.get("text")).startswith("done: ")]) == len(asked)


async def counts(tg: FakeTelegram, *argv: str) -> dict[str, int]:
    """``tgrunner jobs ARGV``: jobs by state."""
    code, out, err = await tgrunner("jobs", *argv, tg=tg)
    assert code == 0, err
    return {k: int(v) for k, v in (line.split() for line in out.splitlines()[1:])}
