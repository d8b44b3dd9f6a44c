"""The offload benchmark's echo bots: every update costs :data:`LOOPS` turns of a pure-Python
loop (about 5 ms of CPU; the harness calibrates it and passes ``BENCH_BURN_LOOPS``), then the
bot replies with the text.

- ``tgrunner run bench.bots.offload_echo:inline``: the loop runs in the handler, on the event
  loop;
- ``tgrunner run bench.bots.offload_echo:offloaded``: the handler awaits
  ``offload(burn, LOOPS)``, so the loop runs in a pool process.

Both measure their own event loop's lag: from the first update on, a ticker sleeps
:data:`TICK` seconds at a time and records how late it wakes. In the control chat
(:data:`CONTROL_CHAT`), ``lag-reset`` empties the record (reply ``reset``) and ``lag``
replies with its p50, p99 and max in ms, and the number of ticks, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from tgrunner.frontends.native.router import Context, Router
from tgrunner.jobs import offload

LOOPS = int(os.environ.get("BENCH_BURN_LOOPS", "60000"))
"""Turns of :func:`burn` per update."""
TICK = 0.005
"""Seconds the lag ticker sleeps between two looks at the clock."""
CONTROL_CHAT = 9_500_000
"""The chat whose ``lag-reset`` and ``lag`` messages control the lag record."""

_late: list[float] = []  # seconds each tick woke past its due time
_ticker: asyncio.Task[None] | None = None


def burn(loops: int) -> int:
    """The update's CPU work: ``loops`` turns of a pure-Python loop."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


async def _tick() -> None:
    while True:
        due = time.monotonic() + TICK
        await asyncio.sleep(TICK)
        _late.append(max(time.monotonic() - due, 0.0))


def _lag() -> str:
    late = sorted(_late)
    if not late:
        return json.dumps({"p50_ms": None, "p99_ms": None, "max_ms": None, "ticks": 0})

    def at(q: float) -> float:
        return round(late[min(len(late) - 1, round(q * (len(late) - 1)))] * 1000, 2)

    return json.dumps({"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0),
                       "ticks": len(late)})  # fmt: skip


async def _control(ctx: Context) -> bool:
    """Start the ticker once; answer a control message (True) or let the update through."""
    global _ticker
    if _ticker is None:
        _ticker = asyncio.get_running_loop().create_task(_tick())
    if ctx.chat_id != CONTROL_CHAT:
        return False
    if ctx.text == "lag-reset":
        _late.clear()
        await ctx.reply("reset")
    elif ctx.text == "lag":
        await ctx.reply(_lag())
    return True


inline = Router()
offloaded = Router()


@inline.message()
async def echo_inline(ctx: Context) -> None:
    if not await _control(ctx):
        burn(LOOPS)
        await ctx.reply(ctx.text or "")


@offloaded.message()
async def echo_offloaded(ctx: Context) -> None:
    if not await _control(ctx):
        await offload(burn, LOOPS)
        await ctx.reply(ctx.text or "")
