"""The bot's broadcasts in the runtime: the outbox opened, and every unfinished broadcast
resumed, as the bot starts; both closed as it stops.

::

    broadcasts = BotBroadcasts(settings)
    runner = Runner(..., startup=broadcasts.startup(fe.startup),
                    shutdown=broadcasts.shutdown(fe.shutdown))
    broadcasts.bot = runner.bot

It runs where the handlers run, so that ``await ctx.bot.broadcast(...)`` finds the outbox of
the bot's data dir (not only ``$TGRUNNER_DATA_DIR``'s): in the bot's process, or with worker
processes in each worker (:func:`open_worker_broadcasts`, given :meth:`BotBroadcasts.path`
in the worker's INIT). The outbox's owner locks (:mod:`tgrunner.flood.outbox`) let every
process try to resume, and exactly one takes each broadcast; a restarted worker takes over
what a dead one held.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from tgrunner.client.bot import token_bot_id
from tgrunner.flood.broadcast import Broadcaster, broadcaster_of, resume_broadcasts, use_outbox
from tgrunner.flood.outbox import OUTBOX_FILE, Outbox
from tgrunner.intake.options import data_dir
from tgrunner.runtime.hooks import Hook, closing, opening
from tgrunner.settings import Settings

__all__ = ["BotBroadcasts", "close_worker_broadcasts", "open_worker_broadcasts"]

log = logging.getLogger(__name__)


class BotBroadcasts:
    """The outbox and broadcaster of the runner's bot (see the module doc). ``bot`` is set
    once the Runner has made its Bot; nothing opens before the start-up hook runs."""

    def __init__(self, settings: Settings, token: str | None) -> None:
        self._root = data_dir(settings.intake)
        self._bot_id = token_bot_id(token)
        self.bot: Any = None
        self._opened: tuple[Outbox, Broadcaster] | None = None

    def path(self) -> str | None:
        """The outbox file, ``<data dir>/<bot id>/broadcasts.sqlite`` (None without a token)."""
        if self._bot_id is None:
            return None
        return str((self._root / str(self._bot_id) / OUTBOX_FILE).resolve())

    async def open(self) -> None:
        """Resume the broadcasts of the outbox; without one yet, have the first broadcast make
        it (a bot that never broadcasts leaves no file)."""
        path = self.path()
        if path is None or self.bot is None:
            return
        self._opened = await _open(self.bot, path)

    async def close(self) -> None:
        opened, self._opened = self._opened, None
        await _close(opened, self.bot)

    def startup(self, inner: Hook | None) -> Hook:
        """``open()`` (resume), then ``inner``."""
        return opening(self.open, self.close, inner)

    def shutdown(self, inner: Hook | None) -> Hook:
        """``inner``, then ``close()``."""
        return closing(self.close, inner)


async def open_worker_broadcasts(bot: Any, path: str | None) -> tuple[Outbox, Broadcaster] | None:
    """A worker process's outbox and broadcaster on ``path`` (its INIT's; None: none)."""
    return None if path is None else await _open(bot, path)


async def close_worker_broadcasts(bot: Any, opened: tuple[Outbox, Broadcaster] | None) -> None:
    """Close what :func:`open_worker_broadcasts` opened for ``bot`` (None: only a broadcaster
    its first broadcast made)."""
    await _close(opened, bot)


async def _open(bot: Any, path: str) -> tuple[Outbox, Broadcaster] | None:
    if not os.path.exists(path):  # one stat, at start  # noqa: ASYNC240
        use_outbox(bot, path)  # nothing to resume: the first broadcast makes the file
        return None
    outbox = Outbox(path)
    try:
        caster = await resume_broadcasts(bot, outbox)
    except BaseException:
        outbox.close()
        raise
    resumed = caster.sending
    if resumed:
        log.info("broadcasts resumed: %s", ", ".join(f"#{n}" for n in resumed))
    return outbox, caster


async def _close(opened: tuple[Outbox, Broadcaster] | None, bot: Any) -> None:
    if opened is None:
        made = broadcaster_of(bot) if bot is not None else None
        if made is not None:  # the first broadcast's own, which closes its outbox
            await made.close()
        return
    outbox, caster = opened
    try:
        await caster.close()
    finally:
        with contextlib.suppress(Exception):
            outbox.close()
