"""This process's state store: the one ``tgrunner run`` opened for the bot (``--state``).

::

    use_store(store)          # the runtime, as the bot starts (in each worker process too)
    store = current_store()   # ctx.store, ctx.chat_data, the aiogram and PTB bridges
    use_store(None)           # the runtime, as the bot stops

One store per process: ``tgrunner run`` runs one bot per process. Code that runs a bot some
other way (its own ``Runner``, a test) may set one with :func:`use_store`.
"""

from __future__ import annotations

from tgrunner.errors import StateError
from tgrunner.state.store import Store

__all__ = ["current_store", "drop_store", "use_store"]

_current: Store | None = None


def use_store(store: Store | None) -> None:
    """Make ``store`` this process's store (None: no store from now on)."""
    global _current
    _current = store


def current_store() -> Store:
    """This process's store; StateError when there is none (the bot is not run by the
    runtime, and nothing called :func:`use_store`)."""
    if _current is None:
        raise StateError(
            "there is no state store in this process: run the bot with 'tgrunner run' (the "
            "store is --state, default SQLite in the data dir), or set one with "
            "tgrunner.state.use_store(open_store(URL))"
        )
    return _current


def drop_store(store: Store) -> None:
    """No store in this process from now on, if ``store`` is its store (a closing store)."""
    global _current
    if _current is store:
        _current = None
