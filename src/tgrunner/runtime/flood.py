"""The runtime's flood control: one :class:`~tgrunner.flood.limiter.FloodControl` per process,
built from ``Settings.flood``, shared by the process's Bot and by an aiogram or PTB bot's
session, so that a 429 seen by either pauses the chat for both.

- The Runner's own Bot (:func:`runner_bot`) and, with worker processes, each worker's Bot
  (:mod:`tgrunner.executors.processes.worker`) get one; :mod:`.build` hands the same one to
  the front-end (the ``flood`` option of the aiogram and PTB adapters).
- ``--flood off`` gives None: no flood control anywhere.
"""

from __future__ import annotations

import logging

from tgrunner.client.bot import Bot
from tgrunner.flood.limiter import FloodControl, flood_control
from tgrunner.flood.options import FloodOptions
from tgrunner.settings import Settings

__all__ = ["open_flood", "runner_bot"]

log = logging.getLogger(__name__)


def open_flood(options: FloodOptions) -> FloodControl | None:
    """This process's FloodControl for ``options``, None when they say ``off``."""
    control = flood_control(options)
    if control is not None:
        log.debug("flood control: %s", options.describe())
    return control


def runner_bot(
    token: str, api_url: str, settings: Settings, flood: FloodControl | None = None
) -> Bot:
    """The Bot a Runner builds for itself: the client settings, one connection per running
    handler plus the poller (a handler never queues for a connection behind the others), and
    ``flood`` (default: built from ``settings.flood``)."""
    client = settings.client
    return Bot(
        token,
        api_url=api_url,
        pool_size=settings.scheduler.concurrency + 2,
        transport=client.transport,
        proxy=client.proxy,
        timeout=client.timeout,
        flood=flood if flood is not None else open_flood(settings.flood),
    )
