"""A native bot whose handler offloads CPU work (``tgrunner run offload_bot:router``); what it
does depends on the message's text:

- ``square N``: replies N², computed in a pool process;
- ``crash``: offloads a function that ends its pool process (``os._exit(5)``) and replies
  ``crashed 5`` (the OffloadCrashed's exit code);
- ``pool``: replies this process's PID, then the PIDs of its pool's processes.
"""

from __future__ import annotations

import os

from tgrunner.errors import OffloadCrashed
from tgrunner.frontends.native.router import Context, Router
from tgrunner.jobs import offload, offload_pids

router = Router()


def square(n: int) -> int:
    return n * n


def die() -> None:
    os._exit(5)


@router.message()
async def handle(ctx: Context) -> None:
    text = ctx.text or ""
    if text.startswith("square "):
        await ctx.reply(str(await offload(square, int(text.split()[1]), timeout=30)))
    elif text == "crash":
        try:
            await offload(die)
        except OffloadCrashed as exc:
            await ctx.reply(f"crashed {exc.exit_code}")
    elif text == "pool":
        await ctx.reply(" ".join(map(str, [os.getpid(), *offload_pids()])))
