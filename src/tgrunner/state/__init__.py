"""State that stays correct under concurrency, across processes and machines.

::

    from tgrunner.state import open_store

    store = open_store("sqlite:///bank.db")    # or postgresql://, mysql://, redis://, memory://

    async with store.transaction(f"acct:{src}", f"acct:{dst}") as tx:   # locked in sorted order
        a = await tx.get(f"acct:{src}", 0)
        if a < amount:
            raise InsufficientFunds
        tx.set(f"acct:{src}", a - amount)
        tx.set(f"acct:{dst}", await tx.get(f"acct:{dst}", 0) + amount)

- :func:`open_store` picks the backend from the URL (:data:`BACKENDS`); :class:`Store` has
  ``get``, ``set`` (with a TTL), ``delete``, ``update(key, fn)`` and ``transaction(*keys)``.
- :func:`current_store` is this process's store: the one ``tgrunner run`` opened for the bot
  (``--state URL``, default SQLite in the data dir), which native handlers reach as
  ``ctx.store``, ``ctx.chat_data`` and ``ctx.user_data`` (:class:`StoredDict`).
- Bridges: :mod:`tgrunner.state.bridges.aiogram` (an FSM storage) and
  :mod:`tgrunner.state.bridges.ptb` (a persistence) keep the frameworks' state in a store.
- Errors (:mod:`tgrunner.errors`): StateConflict when a transaction cannot get its keys
  (retries used up, ``lock_timeout``), StateUnavailable when the backend cannot be reached.
"""

from tgrunner.state.api import MAX_KEY_BYTES, StoreOptions
from tgrunner.state.current import current_store, use_store
from tgrunner.state.data import StoredDict
from tgrunner.state.registry import BACKENDS, open_store
from tgrunner.state.store import Store, Transaction

__all__ = [
    "BACKENDS",
    "MAX_KEY_BYTES",
    "Store",
    "StoreOptions",
    "StoredDict",
    "Transaction",
    "current_store",
    "open_store",
    "use_store",
]
