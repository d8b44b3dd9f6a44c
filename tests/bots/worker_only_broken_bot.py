"""A native echo bot whose import fails in worker processes only, as when the database its
module connects to at import is reachable from the supervisor's start but down by the time
the workers start. ``$BROKEN_UNDER`` is the pid of the process that starts ``tgrunner run``:
the supervisor is its child and imports this fine; its workers are not, and fail."""

from __future__ import annotations

import os

from tgrunner.frontends.native.router import Context, Router


def connect() -> None:
    if str(os.getppid()) != os.environ.get("BROKEN_UNDER", str(os.getppid())):
        raise RuntimeError("the database at db.example:5432 is down")


connect()
router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "")
