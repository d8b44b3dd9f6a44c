"""The state part of ``tgrunner run``: the bot's store, open for as long as the bot runs.

::

    state = BotState(settings, token)
    runner = Runner(..., startup=state.startup(fe.startup), shutdown=state.shutdown(fe.shutdown))

- **Which store.** ``--state URL`` (``TGRUNNER_STATE``): opened as the bot starts, before
  its front-end's start-up (so a PTB persistence on it can load), and checked first of all,
  before any worker process is spawned. An unreachable or failing backend stops the start
  with a ConfigError naming it (``tgrunner run`` exits 2). Without ``--state``: SQLite in
  ``<data dir>/<bot id>/state.sqlite``, opened at its first use, so a bot that keeps no state
  leaves no file (and needs no writable data dir).
- **Where.** The store is this process's (:func:`~tgrunner.state.current.use_store`), so
  ``ctx.store``, ``ctx.chat_data``, ``ctx.user_data`` and the bridges find it. With
  ``--workers N`` each worker process opens its own on the same URL or file
  (:meth:`BotState.for_workers` goes in their INIT, :func:`open_worker_store` reads it), and
  the store's locks work across them.
- **Closed** after the front-end's shutdown hook.
- ``/readyz`` (``--metrics``) has a ``state`` check: the store answers within 2 s
  (:func:`readiness`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tgrunner.errors import ConfigError, StateError, StateUnavailable
from tgrunner.intake.options import DEFAULT_DATA_DIR, IntakeOptions
from tgrunner.runtime.hooks import Hook, closing, opening
from tgrunner.settings import Settings
from tgrunner.state.api import Session, StoreOptions
from tgrunner.state.current import drop_store, use_store
from tgrunner.state.registry import open_store
from tgrunner.state.store import Store

__all__ = [
    "STATE_FILE",
    "BotState",
    "attach",
    "default_path",
    "open_worker_store",
    "readiness",
    "store_of",
]

log = logging.getLogger(__name__)


STATE_FILE = "state.sqlite"
"""The default store's file name, in ``<data dir>/<bot id>/``."""

_CHECK_TIMEOUT = 2.0  # seconds a /readyz check of the store may take

_BY_RUNNER: weakref.WeakKeyDictionary[Any, BotState] = weakref.WeakKeyDictionary()


def default_path(intake: IntakeOptions, bot_id: int) -> Path:
    """``<data dir>/<bot id>/state.sqlite``, absolute (nothing is created)."""
    root = intake.data_dir or os.environ.get("TGRUNNER_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(root).resolve() / str(bot_id) / STATE_FILE


class BotState:
    """The state store of one bot run by ``tgrunner run`` (see the module doc). ``token``
    None: there is no bot to keep state for (the runner refuses to start without a token)."""

    def __init__(self, settings: Settings, token: str | None) -> None:
        self.url = settings.state
        bot_id = token.partition(":")[0] if token else ""
        self.path = (
            default_path(settings.intake, int(bot_id))
            if self.url is None and bot_id.isdigit()
            else None
        )
        self.store: Store | None = None

    def for_workers(self) -> dict[str, Any]:
        """What a worker process needs to open the same store (JSON): ``{"url": URL}`` or
        the default's ``{"path": FILE}``."""
        return {"url": self.url} if self.url is not None else {"path": str(self.path)}

    async def check(self) -> None:
        """Reach the ``--state`` store once, with a store of its own that is closed again;
        ConfigError when it cannot be reached. Nothing for the default store."""
        if self.url is None:
            return
        store = open_store(self.url, purge_interval=0)
        try:
            await _opened(store)
        finally:
            await store.close()

    async def open(self) -> None:
        """Make the store, this process's from now on; open it now if it is ``--state``'s."""
        if self.store is not None or (self.url is None and self.path is None):
            return
        self.store = await open_worker_store(self.for_workers())

    async def close(self) -> None:
        """Close the store (if this process's, it no longer is). Safe to call twice."""
        store, self.store = self.store, None
        if store is not None:
            await _close(store)

    def startup(self, inner: Hook | None) -> Hook:
        """The runner's start-up hook: open the store, then ``inner`` (the front-end's
        start-up); the store is closed again if ``inner`` fails."""
        return opening(self.open, self.close, inner)

    def shutdown(self, inner: Hook | None) -> Hook:
        """The runner's shutdown hook: ``inner`` (the front-end's shutdown), then close the
        store."""
        return closing(self.close, inner)

    async def ready(self) -> dict[str, bool]:
        """The ``/readyz`` check ``state``: the store answers within 2 s."""
        store = self.store
        if store is None:
            return {"state": False}
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                await store.check()
        except (StateError, TimeoutError, OSError) as exc:
            log.warning("/readyz: the state store %s does not answer: %s", store.url, exc)
            return {"state": False}
        return {"state": True}


async def open_worker_store(spec: Mapping[str, Any] | None) -> Store | None:
    """The store ``spec`` names (:meth:`BotState.for_workers`; None: none), made this
    process's store; opened now when it is a URL's (ConfigError when it cannot be)."""
    if not spec:
        return None
    url = spec.get("url")
    if url is not None:
        store = open_store(url)
        await _opened(store)
    else:
        options = StoreOptions()
        store = Store(_DataDirBackend(Path(spec["path"]), options), options)
    use_store(store)
    return store


async def _opened(store: Store) -> None:
    try:
        await store.open()
    except StateError as exc:
        await store.close()
        raise ConfigError(f"{exc}. Start it, or give another --state URL.") from None


async def _close(store: Store) -> None:
    drop_store(store)
    try:
        await store.close()
    except (StateError, OSError) as exc:
        log.warning("closing the state store %s failed: %s", store.url, exc)


def attach(runner: Any, state: BotState) -> None:
    """Tie ``state`` to ``runner``, for :func:`readiness` and :func:`store_of`."""
    _BY_RUNNER[runner] = state


def store_of(runner: Any) -> Store | None:
    """The open store of the bot ``runner`` runs (None: none yet, or not attached)."""
    state = _BY_RUNNER.get(runner)
    return None if state is None else state.store


async def readiness(runner: Any) -> dict[str, bool]:
    """The ``/readyz`` checks of ``runner``'s store (none when it has no :class:`BotState`)."""
    state = _BY_RUNNER.get(runner)
    return {} if state is None else await state.ready()


class _DataDirBackend:
    """The default store's backend: SQLite at ``path``, whose folder (the bot's data dir) is
    made at the first open rather than at start."""

    def __init__(self, path: Path, options: StoreOptions) -> None:
        self.path = path
        self.options = options
        self.url = f"sqlite:///{path}"
        self.identity = f"sqlite:{os.path.realpath(path)}"  # as SQLiteBackend's: same queues
        self._inner: Any = None

    async def open(self) -> None:
        from tgrunner.state.backends.sqlite import SQLiteBackend

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable(
                f"cannot create the data dir {self.path.parent} for the state store: "
                f"{exc.strerror}; pass another --data-dir or --state"
            ) from None
        inner = SQLiteBackend(self.url, self.options)
        await inner.open()
        self._inner = inner

    async def close(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.close()

    async def lock(self, keys: Sequence[str]) -> Session:
        session: Session = await self._inner.lock(keys)
        return session

    async def read(self, key: str) -> bytes | None:
        value: bytes | None = await self._inner.read(key)
        return value

    async def purge(self) -> int:
        count: int = await self._inner.purge()
        return count
