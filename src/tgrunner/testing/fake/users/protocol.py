"""What the parts of the simulation need from each other, as Protocols: a chat needs a user's
identity (:class:`Member`); chats and users need the population's services (:class:`Roster`).

The modules import these instead of each other's classes, so the layering stays one-way:
``messages`` <- ``protocol`` <- ``chats`` <- ``person`` <- the action mixins <- ``user`` <-
``population``.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

from tgrunner.testing.fake.base import World
from tgrunner.testing.fake.users.files import FileIds

__all__ = ["Member", "PollState", "Roster"]

JSON = dict[str, Any]


class Member(Protocol):
    """A simulated user as a chat sees them (a :class:`~.user.SimUser`)."""

    @property
    def id(self) -> int: ...

    def as_dict(self) -> JSON:
        """The User object."""
        ...


class PollState(Protocol):
    """A poll's live state: the Poll, and the options each user chose (by user id)."""

    poll: JSON
    votes: dict[int, list[int]]


class Roster(Protocol):
    """The population as its chats and users see it (a :class:`~.population.Population`).

    ``_chats`` maps a chat id to its :class:`~.chats.SimChat`; the underscored members are the
    population's internals that only the simulation itself uses.
    """

    world: World
    rng: random.Random
    _files: FileIds
    _chats: dict[int, Any]

    def user(self, first_name: str = ...) -> Member:
        """A new user with a private chat with the bot."""
        ...

    def push(self, kind: str, payload: JSON) -> JSON:
        """Hand an update of ``kind`` to the world; returns ``payload``."""
        ...

    def poll_update(self, poll: JSON | str, *, close: bool = ...) -> JSON:
        """Push a ``poll`` update with the poll's current state."""
        ...

    def _new_id(self, low: int, high: int) -> int: ...

    def _query_id(self) -> str: ...

    def _token(self, size: int = ...) -> str: ...

    def _chat_instance(self, where: int | str) -> str: ...

    def _poll(self, poll: JSON | str) -> PollState: ...
