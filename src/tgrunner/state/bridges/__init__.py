"""The frameworks' state on a tgrunner store, safe across worker processes and machines.

- :mod:`tgrunner.state.bridges.aiogram`: ``TgrunnerStorage``, an aiogram 3 FSM storage.
- :mod:`tgrunner.state.bridges.ptb`: ``TgrunnerPersistence``, a python-telegram-bot 22
  persistence.

Each module imports its framework, so it is imported only by a bot that uses it. Both take a
:class:`~tgrunner.state.Store`, a store URL, or nothing: the store of ``tgrunner run``
(``--state``, default SQLite in the data dir), found when first needed.
"""
