"""An aiogram 3 bot that hands heavy work to job workers: the bot answers "⏳ Processing…" at
once, and a job worker sends the result as a reply to the message that asked.

- ``/render TEXT``: ``render`` runs in a job worker (a sync function: its own thread there)
  and its result, a string, is sent as a text reply to the ``/render`` message.
- ``/count N``: ``count`` is async and takes a ``JobContext``: it edits the bot's
  "⏳ Processing…" message as it goes (``ctx.progress``), then into the result.
- Anything else: a short help.

Run it with the embedded queue (a SQLite file in the data dir, no server)::

    cd examples/aiogram_jobs
    export BOT_TOKEN=<token>
    tgrunner run bot:dp --job-workers 2

or with RQ over Valkey/Redis, the bot and its workers apart (any number, any machines)::

    tgrunner run bot:dp --jobs redis://127.0.0.1:6379/0
    tgrunner worker bot --jobs redis://127.0.0.1:6379/0 --concurrency 4

See README.md beside this file, and pod.yaml for the three in one Podman pod.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import time

from aiogram import Dispatcher, F
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from tgrunner.jobs import JobContext, task

WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "2"))
"""How long ``render`` works, to show what a slow job looks like (default 2)."""

dp = Dispatcher()


# -- the jobs: plain functions, run by job workers ------------------------------------------------


@task(retries=3, timeout=120)
def render(prompt: str) -> str:
    """Blocking, CPU-bound work: it would stall the bot's event loop, so a worker runs it. A
    failure is retried up to 3 times (1 s, 2 s, 4 s apart); after the last, the user gets one
    failure message."""
    digest = hashlib.sha256(prompt.encode()).digest()
    end = time.monotonic() + WORK_SECONDS
    while time.monotonic() < end:  # stands in for real work: an image, a PDF, a model
        digest = hashlib.sha256(digest).digest()
    return f"🖼 {html.escape(prompt)}\n{digest.hex()[:16]}"


@task(timeout=300)
async def count(n: int, ctx: JobContext) -> str:
    """Async work that reports how far it got, on one status message."""
    for i in range(1, n + 1):
        await asyncio.sleep(1)
        await ctx.progress(f"⏳ {i}/{n}")
    return f"✅ counted to {n}"


# -- the handlers: they queue the job and answer at once ------------------------------------------


@dp.message(Command("render"))
async def on_render(message: Message, command: CommandObject) -> None:
    prompt = (command.args or "").strip()
    if not prompt:
        await message.answer("Send /render and some text, such as /render a cat on a mat")
        return
    await render.enqueue(prompt, reply_to=message)
    await message.answer("⏳ Processing…")


@dp.message(Command("count"))
async def on_count(message: Message, command: CommandObject) -> None:
    n = int(command.args) if (command.args or "").strip().isdigit() else 5
    sent = await message.answer("⏳ Processing…")
    # status_message: the job edits this message as it goes, then into its result.
    await count.enqueue(min(n, 60), reply_to=message, status_message=sent)


@dp.message(F.text)
async def on_text(message: Message) -> None:
    await message.answer("/render TEXT: a slow job\n/count N: a job that shows its progress")
