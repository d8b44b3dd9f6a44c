"""The population: the simulated users and chats of one world, the ids they are given, and the
polls they vote in."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from tgrunner.testing.fake.base import World
from tgrunner.testing.fake.users.chats import SimChat
from tgrunner.testing.fake.users.files import FileIds
from tgrunner.testing.fake.users.messages import JSON, MESSAGE_KINDS, message_of
from tgrunner.testing.fake.users.user import SimUser

__all__ = ["Population"]


class Population:
    """The simulated users and chats of one world.

    ``seed`` (default 0) makes ids, file ids and random values (dice) repeatable.
    :attr:`updates` lists every update the simulation produced, oldest first.
    """

    def __init__(self, world: World, *, seed: int = 0) -> None:
        self.world = world
        self.rng = random.Random(seed)
        self.updates: list[JSON] = []
        self._used_ids: set[int] = set()
        self._files = FileIds(self.rng)
        # Derives chat_instance values: stable per chat, unguessable from the chat id.
        self._salt = self.rng.randbytes(8)
        self._polls: dict[str, _PollRecord] = {}
        self._chats: dict[int, SimChat] = {}

    def __repr__(self) -> str:
        return f"Population(chats={len(self._chats)}, updates={len(self.updates)})"

    @property
    def last_update(self) -> JSON:
        """The latest update produced; ``LookupError`` if none was."""
        if not self.updates:
            raise LookupError("no update has been produced yet")
        return self.updates[-1]

    # -- factories -------------------------------------------------------------------------

    def user(
        self,
        first_name: str = "Alice",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        is_premium: bool = False,
    ) -> SimUser:
        """A new user with a private chat with the bot (registered with the world).

        ``language_code`` defaults to ``"en"``; None leaves it out, as for users whose client
        does not share it.
        """
        user: JSON = {
            "id": self._new_id(100_000_000, 7_999_999_999),
            "is_bot": False,
            "first_name": first_name,
        }
        if last_name is not None:
            user["last_name"] = last_name
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        # Telegram omits is_premium rather than sending false.
        if is_premium:
            user["is_premium"] = True
        return SimUser(self, user)

    def group(
        self, title: str, *, members: Iterable[SimUser] = (), with_bot: bool = True
    ) -> SimChat:
        """A basic group. The first member is its creator; the bot is an administrator unless
        ``with_bot`` is False (default True; add it later with :meth:`SimChat.add_bot`)."""
        chat: JSON = {"id": -self._new_id(4_000_000_000, 4_999_999_999), "type": "group"}
        chat["title"] = title
        return SimChat(self, chat, members=members, with_bot=with_bot)

    def supergroup(
        self,
        title: str,
        *,
        members: Iterable[SimUser] = (),
        username: str | None = None,
        with_bot: bool = True,
    ) -> SimChat:
        """A supergroup (id ``-100…``), public when ``username`` is given (default: private).
        Members and the bot as for :meth:`group`."""
        chat: JSON = {"id": self._channel_id(), "type": "supergroup", "title": title}
        if username is not None:
            chat["username"] = username
        return SimChat(self, chat, members=members, with_bot=with_bot)

    def forum(
        self, title: str, *, members: Iterable[SimUser] = (), with_bot: bool = True
    ) -> SimChat:
        """A supergroup with topics; create them with :meth:`SimChat.create_topic`."""
        chat: JSON = {"id": self._channel_id(), "type": "supergroup", "title": title}
        chat["is_forum"] = True
        return SimChat(self, chat, members=members, with_bot=with_bot)

    def channel(
        self,
        title: str,
        *,
        username: str | None = None,
        owner: SimUser | None = None,
        with_bot: bool = True,
    ) -> SimChat:
        """A channel (id ``-100…``), public when ``username`` is given. ``owner`` (default: a
        new user) performs admin actions; the bot is an administrator unless ``with_bot`` is
        False."""
        chat: JSON = {"id": self._channel_id(), "type": "channel", "title": title}
        if username is not None:
            chat["username"] = username
        members = [owner] if owner is not None else []
        return SimChat(self, chat, members=members, with_bot=with_bot)

    # -- polls -----------------------------------------------------------------------------

    def poll_update(self, poll: JSON | str, *, close: bool = False) -> JSON:
        """Push a ``poll`` update with the poll's current state (votes counted so far).

        ``poll`` is a message with a poll, a Poll, or a poll id seen before. ``close`` (default
        False) closes the poll first, as when it is stopped.
        """
        record = self._poll(poll)
        if close:
            record.poll["is_closed"] = True
        return self.push("poll", _copy_poll(record.poll))

    # -- internals -------------------------------------------------------------------------

    def push(self, kind: str, payload: JSON) -> JSON:
        """Hand an update of ``kind`` to the world (messages are stored first), record it in
        :attr:`updates` and return ``payload``. Actions use it; tests may too, for a hand-made
        update."""
        if kind in MESSAGE_KINDS:
            self.world.remember_message(payload)
        update = self.world.push_update(kind, payload)
        self.updates.append(update)
        return payload

    def _new_id(self, low: int, high: int) -> int:
        while True:
            n = self.rng.randint(low, high)
            if n not in self._used_ids:
                self._used_ids.add(n)
                return n

    def _channel_id(self) -> int:
        # Supergroups and channels are -100 followed by ten digits.
        return -(10**12 + self._new_id(1_000_000_000, 2_999_999_999))

    def _query_id(self) -> str:
        return str(self.rng.randrange(10**18, 9 * 10**18))

    def _token(self, size: int = 12) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(size)).decode().rstrip("=")

    def _chat_instance(self, where: int | str) -> str:
        digest = hashlib.blake2b(str(where).encode(), key=self._salt, digest_size=8).digest()
        return str(int.from_bytes(digest, "big", signed=True))

    def _poll(self, poll: JSON | str) -> _PollRecord:
        if isinstance(poll, str):
            record = self._polls.get(poll)
            if record is None:
                raise LookupError(f"unknown poll id {poll!r}: pass the message with the poll")
            return record
        found: JSON = message_of(poll)["poll"] if "poll" in poll or "update_id" in poll else poll
        record = self._polls.get(found["id"])
        if record is None:
            record = self._polls[found["id"]] = _PollRecord(_copy_poll(found))
        return record


@dataclass(slots=True)
class _PollRecord:
    """A poll's live state: vote counts follow :meth:`SimUser.answer_poll`."""

    poll: JSON
    # user id -> the options they chose
    votes: dict[int, list[int]] = field(default_factory=dict)


def _copy_poll(poll: JSON) -> JSON:
    return poll | {"options": [dict(o) for o in poll["options"]]}
