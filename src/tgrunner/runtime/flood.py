"""The runtime's flood control: one :class:`~tgrunner.flood.limiter.FloodControl` per process,
built from ``Settings.flood``, shared by the process's Bot and by an aiogram or PTB bot's
session, so that a 429 seen by either pauses the chat for both.

- The Runner's own Bot (:func:`runner_bot`) and, with worker processes, each worker's Bot
  (:mod:`tgrunner.executors.processes.worker`) get one; :mod:`.build` hands the same one to
  the front-end (the ``flood`` option of the aiogram and PTB adapters).
- ``--flood off`` gives None: no flood control anywhere.
- **Shared buckets** (:func:`share_buckets`): with ``--flood-store redis://…`` every bucket and
  pause goes through Redis/Valkey (:func:`tgrunner.flood.shared.open_shared`, keys prefixed
  by the bot's id); with worker processes and no store, the global buckets (bulk, paid) go
  through a file in the bot's data dir (``flood.buckets``,
  :class:`~tgrunner.flood.backends.file.FileBuckets`), so the workers pace broadcasts
  together. The backends are imported only then.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError, TgrunnerError
from tgrunner.flood.limiter import FloodControl, flood_control
from tgrunner.flood.options import FloodOptions
from tgrunner.settings import Settings

__all__ = ["BUCKET_FILE", "open_flood", "runner_bot", "share_buckets"]

BUCKET_FILE = "flood.buckets"
"""The file in ``<data dir>/<bot id>/`` where worker processes share the global buckets."""

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


def share_buckets(
    flood: FloodControl | None,
    options: FloodOptions,
    *,
    bot_id: int,
    bucket_file: str | Path | None = None,
) -> None:
    """Give ``flood`` the buckets it shares: every bucket through ``options.store``, else the
    global ones through ``bucket_file`` (worker processes; None: none, this process paces
    alone). ConfigError when the store cannot be used."""
    if flood is None or (options.store is None and bucket_file is None):
        return
    try:
        shared = importlib.import_module("tgrunner.flood.shared")
    except ModuleNotFoundError as exc:
        if exc.name != "tgrunner.flood.shared":
            raise
        if options.store is not None:
            raise ConfigError(
                "--flood-store: this tgrunner has no shared flood buckets "
                "(tgrunner.flood.shared); upgrade it, or drop --flood-store"
            ) from None
        log.debug("no shared flood buckets here: each worker process paces broadcasts alone")
        return
    if options.store is not None:
        flood.share(
            shared.open_shared(options.store, prefix=f"tgrunner:flood:{bot_id}:"), chats=True
        )
        return
    assert bucket_file is not None
    path = Path(bucket_file).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flood.share(shared.open_shared(path.as_uri()))
    except (OSError, TgrunnerError) as exc:  # pacing alone is still pacing
        log.warning("worker processes do not share the bulk bucket (%s): %s", path, exc)
