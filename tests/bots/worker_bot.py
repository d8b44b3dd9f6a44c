"""A native bot for the worker-process tests; what it does depends on the message's text:

- ``pid``: replies with the process id of the worker that handled it;
- ``exit``: ends its process at once (``os._exit(3)``), as a crashing extension would;
- ``kill``: SIGKILLs its own process, every time (a poison update);
- ``hang-once``: the first time (a marker file in ``$WORKER_BOT_DIR`` says), blocks the event
  loop with ``time.sleep(30)``; the next time replies ``recovered``. ``hang-once stubborn``
  ignores SIGTERM first, so only SIGKILL ends it;
- ``raise``: raises ``ValueError("boom")``;
- ``spin N``: spins the CPU for N ms, then replies ``spun``;
- ``wait N``: waits N ms (on the event loop), then replies ``waited N``;
- ``sleep``: sleeps for a minute; when cancelled, replies ``cancelled`` first;
- anything else: waits up to 20 ms, then replies with the text (several are in flight).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
from pathlib import Path

from tgrunner.frontends.native.router import Context, Router

router = Router()


@router.message(text="pid")
async def pid(ctx: Context) -> None:
    await ctx.reply(str(os.getpid()))


@router.message(text="exit")
async def exit_now(ctx: Context) -> None:
    os._exit(3)


@router.message(text="kill")
async def kill(ctx: Context) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@router.message(text=re.compile(r"^hang-once( stubborn)?$"))
async def hang_once(ctx: Context) -> None:
    marker = Path(os.environ["WORKER_BOT_DIR"]) / f"hung-{ctx.update['update_id']}"
    if not marker.exists():
        marker.touch()
        if ctx.text == "hang-once stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)  # noqa: ASYNC251 - it blocks the event loop on purpose: no heartbeat
    await ctx.reply("recovered")


@router.message(text="raise")
async def fail(ctx: Context) -> None:
    raise ValueError("boom")


@router.message(text="sleep")
async def sleep(ctx: Context) -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await ctx.reply("cancelled")
        raise


@router.message()
async def echo(ctx: Context) -> None:
    text = ctx.text or ""
    if text.startswith("spin "):
        end = time.perf_counter() + int(text.split()[1]) / 1000
        while time.perf_counter() < end:
            pass
        await ctx.reply("spun")
        return
    if text.startswith("wait "):
        await asyncio.sleep(int(text.split()[1]) / 1000)
        await ctx.reply(text.replace("wait", "waited"))
        return
    await asyncio.sleep(random.uniform(0.0, 0.02))
    await ctx.reply(text)
