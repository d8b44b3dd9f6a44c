"""Simulated users: people, chats and channels that talk to the bot through FakeTelegram.

Tests script what users do; every action produces the update Telegram would send, of the right
kind and shape, through the :class:`~tgrunner.testing.fake.base.World`:

.. code-block:: python

    alice = tg.user("Alice", username="alice")   # FakeTelegram delegates to a Population
    alice.send("/start")                         # message with a bot_command entity
    [menu] = await tg.wait_for_replies(alice, 1)
    alice.press(menu, text="Yes")                # callback_query for the bot's button
    team = tg.supergroup("Team", members=[alice])
    alice.send("hi @bob_b #news", chat=team)     # mention and hashtag entities

Every action returns the object it produced: the Message for message actions, otherwise the
update's payload (CallbackQuery, ChatMemberUpdated, ...). :attr:`Population.updates` keeps every
update produced, in order. Messages are stored in the world's history, so the bot can reply to
them and edit them. Whether the bot *receives* an update (``allowed_updates``) is the world's
business, not the simulation's.

Setup is silent: creating users and chats pushes no update. Membership changes made afterwards
(``join``, ``chat.add_bot()``, ``ban``...) push ``chat_member``/``my_chat_member`` updates and
the service messages Telegram sends with them.

The bot hears only what Telegram would tell it. In a group or channel it must be a member to get
service messages, and an administrator (the default for new chats) to get ``chat_member``,
reactions, join requests and boosts; an event it cannot hear still changes the simulation, and
its action returns the payload without pushing it. Sending a message into a chat without the bot
is taken for a mistake in the test and raises ``ValueError``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tgrunner.testing.botapi import load_spec
from tgrunner.testing.fake.base import World

# One list, shared with the generator, of fields that Bot API versions newer than the shipped
# spec made required and that current clients insist on.
from tgrunner.testing.fake.generate import _NEWER_REQUIRED

__all__ = [
    "ButtonNotFound",
    "Population",
    "SimChat",
    "SimUser",
    "Topic",
    "parse_entities",
    "utf16_len",
]

JSON = dict[str, Any]

# -- entities ------------------------------------------------------------------------------

# Bare domains are links only with a known top-level domain, as in Telegram's parser; otherwise
# "file.txt" or "e.g" in prose would become links.
_TLDS = (
    "com|org|net|io|dev|app|ai|me|co|info|biz|edu|gov|xyz|online|site|tech|ru|de|uk|fr|it|es|"
    "nl|pl|ua|by|kz|in|jp|cn|br|us|ca|au|eu|ch|se|no|fi|tv|cc|ly|gg|to|sh|so"
)
_SCANNERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "email",
        re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    ),
    (
        "url",
        re.compile(
            r"(?<![\w@/.])(?:(?:https?|ftp|tg)://[^\s<>\"]+"
            rf"|(?:[A-Za-z0-9-]+\.)+(?:{_TLDS})(?::\d{{1,5}})?(?:/[^\s<>\"]*)?)(?![\w@])",
            re.IGNORECASE,
        ),
    ),
    (
        "bot_command",
        re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w@/])"),
    ),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}(?![\w@])")),
    # A hashtag needs a non-digit: "#1" is not one.
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{3,8}(?![\w$])")),
)
_URL_TAIL = ".,:;!?'\")]"


def utf16_len(text: str) -> int:
    """The length of ``text`` in UTF-16 code units, the unit of Telegram's entity offsets.

    A character outside the Basic Multilingual Plane (most emoji) counts twice.
    """
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def parse_entities(text: str) -> list[JSON]:
    """The entities Telegram detects in plain text, with UTF-16 ``offset`` and ``length``.

    Detected: ``bot_command`` (``/cmd`` and ``/cmd@botname``), ``mention`` (``@username``, 5–32
    characters), ``hashtag``, ``cashtag``, ``url`` (with a scheme, or a bare domain with a common
    top-level domain) and ``email``. Of overlapping matches the earlier one is kept, and of
    two at the same position the longer one.
    """
    found: list[tuple[int, int, str]] = []
    for kind, pattern in _SCANNERS:
        for m in pattern.finditer(text):
            start, end = m.span()
            if kind == "url":
                # Trailing punctuation ends the sentence, not the link.
                while end > start and text[end - 1] in _URL_TAIL:
                    if text[end - 1] == ")" and text.count("(", start, end) >= text.count(
                        ")", start, end
                    ):
                        break
                    end -= 1
            found.append((start, end, kind))
    found.sort(key=lambda e: (e[0], -(e[1] - e[0])))
    entities: list[JSON] = []
    last_end = 0
    for start, end, kind in found:
        if start < last_end:
            continue
        last_end = end
        offset = utf16_len(text[:start])
        entities.append({"type": kind, "offset": offset, "length": utf16_len(text[start:end])})
    return entities


def _with_text(text: str, *, caption: bool = False) -> JSON:
    """A message's ``text`` (or ``caption``) with the entities found in it."""
    key, ents = ("caption", "caption_entities") if caption else ("text", "entities")
    content: JSON = {key: text}
    entities = parse_entities(text)
    if entities:
        content[ents] = entities
    return content


# -- small helpers -------------------------------------------------------------------------

# The first byte of a real file_id names the file's type; mimicking it makes ids look right
# ("AgAC..." for photos) to anyone who inspects them.
_FILE_TYPE = {
    "photo": 2,
    "voice": 3,
    "video": 4,
    "document": 5,
    "sticker": 8,
    "audio": 9,
    "animation": 10,
    "video_note": 13,
}
_DICE_FACES = {"🎲": 6, "🎯": 6, "🎳": 6, "🏀": 5, "⚽": 5, "🎰": 64}
_SHIPPING_ADDRESS = {
    "country_code": "US",
    "state": "CA",
    "city": "San Francisco",
    "street_line1": "1 Market St",
    "street_line2": "",
    "post_code": "94105",
}
_ADMIN_RIGHTS = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
)
_RESTRICTED_RIGHTS = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)
_PRESENT = frozenset({"creator", "administrator", "member", "restricted"})
_CAPTIONED = ("animation", "audio", "document", "paid_media", "photo", "video", "voice")
_NOT_FORWARDED = frozenset(
    {
        "message_id",
        "message_thread_id",
        "from",
        "sender_chat",
        "chat",
        "date",
        "forward_origin",
        "is_topic_message",
        "reply_to_message",
        "external_reply",
        "quote",
        "edit_date",
        "author_signature",
        "business_connection_id",
        "guest_query_id",
        "reply_markup",
    }
)
_MESSAGE_KINDS = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
    "guest_message",
)


@runtime_checkable
class _Directory(Protocol):
    """Optional part of a world that answers ``getChat``/``getChatMember``; kept in step with
    the simulation when the world has it (FakeTelegram's ``State`` does)."""

    def register_user(self, user: JSON) -> None: ...

    def set_member(self, chat_id: int, member: JSON) -> None: ...

    def remove_member(self, chat_id: int, user_id: int) -> None: ...


class ButtonNotFound(LookupError):
    """:meth:`SimUser.press` found no callback button with the given data or text."""


@dataclass(frozen=True, slots=True)
class Topic:
    """A forum topic: ``id`` is its ``message_thread_id``; ``created`` its service message."""

    id: int
    name: str
    created: JSON


def _message_of(obj: Any) -> JSON:
    """A Message from a Message dict or an update that carries one."""
    if isinstance(obj, dict):
        if "message_id" in obj and "chat" in obj:
            return obj
        for kind in _MESSAGE_KINDS:
            if isinstance(obj.get(kind), dict):
                return obj[kind]
        if isinstance(obj.get("message"), dict):  # a CallbackQuery
            return obj["message"]
    raise TypeError(f"expected a Message (or an update carrying one), got {obj!r}")


def _bare(message: JSON) -> JSON:
    """A message as nested in ``reply_to_message``: Telegram drops its own reply there."""
    return {k: v for k, v in message.items() if k != "reply_to_message"}


# -- the population ------------------------------------------------------------------------


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
        self._file_seq = itertools.count(1)
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
        if kind in _MESSAGE_KINDS:
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

    def _file(self, kind: str, size: int | None = None) -> JSON:
        """``file_id``, ``file_unique_id`` and ``file_size`` of a new file."""
        n = next(self._file_seq)
        raw = bytes((_FILE_TYPE[kind], 0, 2, 0)) + n.to_bytes(4, "big") + self.rng.randbytes(48)
        unique = bytes((_FILE_TYPE[kind],)) + n.to_bytes(4, "big") + self.rng.randbytes(7)
        return {
            "file_id": base64.urlsafe_b64encode(raw).decode().rstrip("="),
            "file_unique_id": base64.urlsafe_b64encode(unique).decode().rstrip("="),
            "file_size": size if size is not None else self.rng.randint(10_000, 2_000_000),
        }

    def _photo(self, width: int, height: int) -> list[JSON]:
        """A photo's sizes, smallest first, as Telegram lists them."""
        sizes = []
        for side in (90, 320, 800, 1280):
            scale = min(1.0, side / max(width, height))
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            sizes.append(self._file("photo", size=w * h // 8) | {"width": w, "height": h})
            if scale == 1.0:
                break
        return sizes

    def _poll(self, poll: JSON | str) -> _PollRecord:
        if isinstance(poll, str):
            record = self._polls.get(poll)
            if record is None:
                raise LookupError(f"unknown poll id {poll!r}: pass the message with the poll")
            return record
        if "poll" in poll or "update_id" in poll:
            poll = _message_of(poll)["poll"]
        record = self._polls.get(poll["id"])
        if record is None:
            record = self._polls[poll["id"]] = _PollRecord(_copy_poll(poll))
        return record


@dataclass(slots=True)
class _PollRecord:
    """A poll's live state: vote counts follow :meth:`SimUser.answer_poll`."""

    poll: JSON
    # user id -> the options they chose
    votes: dict[int, list[int]] = field(default_factory=dict)


def _copy_poll(poll: JSON) -> JSON:
    return poll | {"options": [dict(o) for o in poll["options"]]}


# -- chats ---------------------------------------------------------------------------------


class SimChat:
    """A chat of the simulation: a user's private chat, a group, supergroup, forum or channel.

    ``id``, ``type`` and ``title`` mirror the Chat object; :meth:`as_dict` returns it. ``user``
    is the other party of a private chat (None for other chats). Admin
    actions (``promote``, ``ban``, ``add_bot``...) are performed ``by`` a user, by default the
    chat's owner (its first member, or a user created for the purpose).
    """

    def __init__(
        self,
        population: Population,
        chat: JSON,
        *,
        members: Iterable[SimUser] = (),
        with_bot: bool = True,
        user: SimUser | None = None,
    ) -> None:
        self.population = population
        self._chat = chat
        self.user = user
        self._members: dict[int, JSON] = {}
        self._owner: SimUser | None = None
        population._chats[self.id] = self
        world = population.world
        world.register_chat(chat)
        bot = world.bot_user
        if user is not None:
            self._set(_member(bot))
            return
        for i, sim in enumerate(members):
            if i == 0:
                self._owner = sim
                self._set({"status": "creator", "user": sim.as_dict(), "is_anonymous": False})
            else:
                self._set(_member(sim.as_dict()))
        self._set(_admin(bot, chat["type"]) if with_bot else _left(bot))

    def __repr__(self) -> str:
        return f"SimChat(id={self.id}, type={self.type!r}, title={self.title!r})"

    @property
    def id(self) -> int:
        return int(self._chat["id"])

    @property
    def type(self) -> str:
        """``"private"``, ``"group"``, ``"supergroup"`` or ``"channel"``."""
        return str(self._chat["type"])

    @property
    def title(self) -> str | None:
        return self._chat.get("title")

    @property
    def is_forum(self) -> bool:
        return bool(self._chat.get("is_forum"))

    @property
    def owner(self) -> SimUser:
        """The chat's owner; a channel created without one gets a new user, once."""
        if self._owner is None:
            if self.user is not None:
                return self.user
            self._owner = self.population.user("Owner")
            self._set({"status": "creator", "user": self._owner.as_dict(), "is_anonymous": False})
        return self._owner

    def as_dict(self) -> JSON:
        """The Chat object, as it appears in messages and updates."""
        return dict(self._chat)

    def status(self, user: SimUser | JSON) -> str:
        """A user's (or the bot's, given ``world.bot_user``) status here; ``"left"`` if never
        a member."""
        uid = user.id if isinstance(user, SimUser) else int(user["id"])
        return str(self._members.get(uid, {}).get("status", "left"))

    def member(self, user: SimUser | JSON) -> JSON:
        """The ChatMember object of a user (or the bot) in this chat."""
        u = user.as_dict() if isinstance(user, SimUser) else user
        return dict(self._members.get(int(u["id"])) or _left(u))

    @property
    def bot_present(self) -> bool:
        return self.status(self.population.world.bot_user) in _PRESENT

    # -- admin actions ---------------------------------------------------------------------

    def add_bot(self, *, by: SimUser | None = None, admin: bool = False) -> JSON:
        """Add the bot (``my_chat_member``: left → member, or administrator when ``admin``,
        default False; always administrator in channels), with the ``new_chat_members``
        service message in groups. Returns the ChatMemberUpdated."""
        self._not_private("add the bot to")
        bot = self.population.world.bot_user
        by = by or self.owner
        new = _admin(bot, self.type) if admin or self.type == "channel" else _member(bot)
        update = self._change("my_chat_member", bot, new, by)
        if self.type != "channel":
            self._service(by, {"new_chat_members": [bot]})
        return update

    def kick_bot(self, *, by: SimUser | None = None) -> JSON:
        """Remove the bot (``my_chat_member``: → left in basic groups, kicked elsewhere)."""
        self._not_private("remove the bot from")
        bot = self.population.world.bot_user
        new = _left(bot) if self.type == "group" else _kicked(bot, 0)
        return self._change("my_chat_member", bot, new, by or self.owner)

    def promote(
        self, user: SimUser, *, by: SimUser | None = None, title: str | None = None
    ) -> JSON:
        """Make ``user`` an administrator (``chat_member``); ``title`` is the custom title."""
        self._not_private("promote in")
        new = _admin(user.as_dict(), self.type, can_be_edited=True)
        if title is not None:
            new["custom_title"] = title
        return self._change("chat_member", user.as_dict(), new, by or self.owner)

    def demote(self, user: SimUser, *, by: SimUser | None = None) -> JSON:
        """Make an administrator a plain member again (``chat_member``)."""
        self._not_private("demote in")
        return self._change(
            "chat_member", user.as_dict(), _member(user.as_dict()), by or self.owner
        )

    def restrict(self, user: SimUser, *, by: SimUser | None = None, until: int = 0) -> JSON:
        """Forbid ``user`` to send anything until the Unix time ``until`` (0, the default:
        forever). Supergroups only, as in Telegram."""
        if self.type != "supergroup":
            raise ValueError(f"members can be restricted only in supergroups, not in {self!r}")
        u = user.as_dict()
        new: JSON = {"status": "restricted", "user": u, "is_member": True, "until_date": until}
        new |= dict.fromkeys(_RESTRICTED_RIGHTS, False)
        return self._change("chat_member", u, new, by or self.owner)

    def ban(self, user: SimUser, *, by: SimUser | None = None, until: int = 0) -> JSON:
        """Ban ``user`` until ``until`` (0, the default: forever): ``chat_member`` → kicked,
        with the ``left_chat_member`` service message when they were in a group."""
        self._not_private("ban in")
        by = by or self.owner
        u = user.as_dict()
        was_in = self.status(user) in _PRESENT
        update = self._change("chat_member", u, _kicked(u, until), by)
        if was_in and self.type != "channel":
            self._service(by, {"left_chat_member": u})
        return update

    def unban(self, user: SimUser, *, by: SimUser | None = None) -> JSON:
        """Lift a ban (``chat_member``: kicked → left); the user may join again."""
        self._not_private("unban in")
        return self._change("chat_member", user.as_dict(), _left(user.as_dict()), by or self.owner)

    def create_topic(
        self, name: str, *, by: SimUser | None = None, icon_color: int = 0x6FB9F0
    ) -> Topic:
        """Create a forum topic (a ``forum_topic_created`` service message, whose id becomes the
        topic's ``message_thread_id``). ``icon_color`` defaults to Telegram's blue."""
        if not self.is_forum:
            raise ValueError(f"{self!r} is not a forum; create it with Population.forum()")
        sender = by or self.owner
        chat_id = self.id
        world = self.population.world
        mid = world.next_message_id(chat_id)
        created: JSON = {
            "message_id": mid,
            "message_thread_id": mid,
            "from": sender.as_dict(),
            "chat": self.as_dict(),
            "date": world.now(),
            "is_topic_message": True,
            "forum_topic_created": {"name": name, "icon_color": icon_color},
        }
        self.population.push("message", created)
        return Topic(mid, name, created)

    def reaction_count(self, message: JSON, counts: Mapping[str, int]) -> JSON:
        """Anonymous reactions on ``message`` (``message_reaction_count``): ``counts`` maps each
        emoji to how many times it was set, e.g. ``{"👍": 3}``."""
        msg = _message_of(message)
        payload = {
            "chat": self.as_dict(),
            "message_id": msg["message_id"],
            "date": self.population.world.now(),
            "reactions": [
                {"type": {"type": "emoji", "emoji": e}, "total_count": n}
                for e, n in counts.items()
                if n > 0
            ],
        }
        return self._deliver("message_reaction_count", payload, admin_only=True)

    # -- channel posts ---------------------------------------------------------------------

    def post(self, text: str, *, signature: str | None = None) -> JSON:
        """A text post in this channel (``channel_post``); ``signature`` is the author's, when
        the channel signs posts (default: unsigned)."""
        self._require_channel()
        world = self.population.world
        msg: JSON = {
            "message_id": world.next_message_id(self.id),
            "sender_chat": self.as_dict(),
            "chat": self.as_dict(),
            "date": world.now(),
        }
        if signature is not None:
            msg["author_signature"] = signature
        msg |= _with_text(text)
        return self.population.push("channel_post", msg)

    def edit_post(self, message: JSON, text: str) -> JSON:
        """A new text for a post (``edited_channel_post``)."""
        self._require_channel()
        msg = _current(self.population.world, _message_of(message))
        return self.population.push("edited_channel_post", _edited(msg, text, self.population))

    # -- internals -------------------------------------------------------------------------

    def _set(self, member: JSON) -> None:
        uid = int(member["user"]["id"])
        self._members[uid] = member
        world = self.population.world
        if isinstance(world, _Directory):
            if member["status"] in ("left",):
                world.remove_member(self.id, uid)
            else:
                world.set_member(self.id, member)

    def _deliver(self, kind: str, payload: JSON, *, admin_only: bool = False) -> JSON:
        """Push ``payload`` if the bot would get it: it must be in the chat, and be an
        administrator for ``admin_only`` kinds. Otherwise the event still happened, unheard."""
        status = self.status(self.population.world.bot_user)
        heard = status in ("administrator", "creator") if admin_only else status in _PRESENT
        if heard or self.type == "private":
            return self.population.push(kind, payload)
        return payload

    def _change(self, kind: str, user: JSON, new: JSON, by: SimUser) -> JSON:
        old = self.member(user)
        self._set(new)
        payload = {
            "chat": self.as_dict(),
            "from": by.as_dict(),
            "date": self.population.world.now(),
            "old_chat_member": old,
            "new_chat_member": new,
        }
        if kind == "my_chat_member":
            # The bot always hears of its own status, even of being removed.
            return self.population.push(kind, payload)
        return self._deliver(kind, payload, admin_only=True)

    def _service(self, sender: SimUser, content: JSON) -> JSON:
        world = self.population.world
        msg = {
            "message_id": world.next_message_id(self.id),
            "from": sender.as_dict(),
            "chat": self.as_dict(),
            "date": world.now(),
        } | content
        return self._deliver("message", msg)

    def _not_private(self, action: str) -> None:
        if self.type == "private":
            raise ValueError(f"cannot {action} a private chat")

    def _require_channel(self) -> None:
        if self.type != "channel":
            raise ValueError(f"{self!r} is not a channel")
        if not self.bot_present:
            raise ValueError(f"the bot is not an administrator of {self!r}")


def _member(user: JSON) -> JSON:
    return {"status": "member", "user": user}


def _left(user: JSON) -> JSON:
    return {"status": "left", "user": user}


def _kicked(user: JSON, until: int) -> JSON:
    return {"status": "kicked", "user": user, "until_date": until}


def _admin(user: JSON, chat_type: str, *, can_be_edited: bool = False) -> JSON:
    member: JSON = {
        "status": "administrator",
        "user": user,
        "can_be_edited": can_be_edited,
        "is_anonymous": False,
    }
    member |= dict.fromkeys(_ADMIN_RIGHTS, True)
    member |= _newer_required("ChatMemberAdministrator")
    # Rights that exist only for one kind of chat are sent only there.
    if chat_type == "channel":
        member |= {"can_post_messages": True, "can_edit_messages": True}
    else:
        member["can_pin_messages"] = True
        if chat_type == "supergroup":
            member["can_manage_topics"] = True
    return member


@functools.cache
def _newer_required(type_name: str) -> JSON:
    """Fields newer clients require of ``type_name`` that the shipped spec does not have yet."""
    known = {f.name for f in load_spec().types[type_name].fields}
    return {k: v for k, v in _NEWER_REQUIRED.get(type_name, {}).items() if k not in known}


def _current(world: World, message: JSON) -> JSON:
    """The latest stored version of a message; ``LookupError`` if it is gone."""
    chat_id = int(message["chat"]["id"])
    found = world.get_message(chat_id, int(message["message_id"]))
    if found is None:
        raise LookupError(f"message {message['message_id']} of chat {chat_id} does not exist")
    return found


def _edited(message: JSON, text: str, population: Population) -> JSON:
    """``message`` with a new text (or caption, for media) and an ``edit_date``."""
    caption = "text" not in message
    if caption and not any(k in message for k in _CAPTIONED):
        raise ValueError(f"message {message['message_id']} has no text or caption to edit")
    drop = ("caption", "caption_entities") if caption else ("text", "entities")
    edited = {k: v for k, v in message.items() if k not in drop}
    edited |= _with_text(text, caption=caption)
    edited["edit_date"] = population.world.now()
    return edited


def _origin(message: JSON) -> JSON:
    """The MessageOrigin of a message being forwarded or quoted from another chat."""
    date = message["date"]
    if message["chat"]["type"] == "channel":
        origin = {"type": "channel", "date": date, "chat": message["chat"]}
        return origin | {"message_id": message["message_id"]}
    sender_chat = message.get("sender_chat")
    if sender_chat is not None:
        return {"type": "chat", "date": date, "sender_chat": sender_chat}
    return {"type": "user", "date": date, "sender_user": message["from"]}


# -- users ---------------------------------------------------------------------------------


class SimUser:
    """A simulated person. ``id`` is their user id (and their private chat's id); ``chat`` is
    that private chat. Actions default to the private chat; pass ``chat=`` to act in a group.

    Message actions take ``chat`` (a :class:`SimChat`), ``reply_to`` (a message or a message id
    in that chat) and ``thread`` (a :class:`Topic` or a thread id) and return the Message.
    """

    def __init__(self, population: Population, user: JSON) -> None:
        self.population = population
        self._user = user
        if isinstance(population.world, _Directory):
            population.world.register_user(user)
        chat = {"id": user["id"], "type": "private"}
        chat |= {k: user[k] for k in ("first_name", "last_name", "username") if k in user}
        self.chat = SimChat(population, chat, user=self)
        self._reactions: dict[tuple[int, int], list[JSON]] = {}
        self._boosts: dict[int, list[JSON]] = {}
        self._business: JSON | None = None

    def __repr__(self) -> str:
        return f"SimUser(id={self.id}, first_name={self.first_name!r})"

    @property
    def id(self) -> int:
        return int(self._user["id"])

    @property
    def first_name(self) -> str:
        return str(self._user["first_name"])

    @property
    def username(self) -> str | None:
        return self._user.get("username")

    def as_dict(self) -> JSON:
        """The User object."""
        return dict(self._user)

    # -- text messages ---------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A text message (``message``), with the entities Telegram would detect in it
        (see :func:`parse_entities`)."""
        return self._send(_with_text(text), chat, reply_to, thread)

    def command(
        self,
        name: str,
        args: str = "",
        *,
        chat: SimChat | None = None,
        mention_bot: bool = False,
        thread: Topic | int | None = None,
    ) -> JSON:
        """``/name args`` as a message; ``mention_bot`` (default False) writes
        ``/name@botusername``, as clients do when a command is picked in a group."""
        text = "/" + name.lstrip("/")
        if mention_bot:
            text += "@" + str(self.population.world.bot_user.get("username", ""))
        if args:
            text += " " + args
        return self.send(text, chat=chat, thread=thread)

    def reply(self, message: JSON, text: str) -> JSON:
        """A text reply to ``message``, in its chat and thread."""
        msg = _message_of(message)
        chat = self._chat_of(msg)
        return self.send(text, chat=chat, reply_to=msg, thread=msg.get("message_thread_id"))

    def edit(self, message: JSON, text: str) -> JSON:
        """Change the text (or caption) of one of this user's messages: ``edited_message``, or
        ``edited_business_message`` for a business message."""
        msg = _current(self.population.world, _message_of(message))
        if (msg.get("from") or {}).get("id") != self.id:
            raise ValueError(f"{self!r} can edit only their own messages")
        kind = "edited_business_message" if "business_connection_id" in msg else "edited_message"
        return self.population.push(kind, _edited(msg, text, self.population))

    def forward(self, message: JSON, to_chat: SimChat | None = None) -> JSON:
        """Forward ``message`` into ``to_chat`` (default: this user's chat with the bot), with
        its ``forward_origin``."""
        msg = _message_of(message)
        if msg.get("has_protected_content"):
            raise ValueError(f"message {msg['message_id']} is protected from forwarding")
        # A forward keeps the content and the first origin; context stays behind.
        content = {"forward_origin": msg.get("forward_origin") or _origin(msg)}
        content |= {k: v for k, v in msg.items() if k not in _NOT_FORWARDED}
        return self._send(content, to_chat, None, None)

    # -- media -----------------------------------------------------------------------------

    def send_photo(
        self,
        caption: str | None = None,
        *,
        width: int = 1280,
        height: int = 960,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A photo (default 1280×960) in the sizes Telegram makes of it, with a caption."""
        content: JSON = {"photo": self.population._photo(width, height)}
        return self._media(content, caption, chat, reply_to, thread)

    def send_document(
        self,
        file_name: str = "report.pdf",
        *,
        mime_type: str = "application/pdf",
        size: int | None = None,
        caption: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A file (default ``report.pdf``, ``application/pdf``, a random size)."""
        doc = self.population._file("document", size)
        doc |= {"file_name": file_name, "mime_type": mime_type}
        return self._media({"document": doc}, caption, chat, reply_to, thread)

    def send_video(
        self,
        caption: str | None = None,
        *,
        duration: int = 10,
        width: int = 1280,
        height: int = 720,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """An MP4 video (default 10 s, 1280×720) with a thumbnail."""
        pop = self.population
        video = pop._file("video") | {"width": width, "height": height, "duration": duration}
        video |= {"thumbnail": pop._photo(width, height)[0], "mime_type": "video/mp4"}
        return self._media({"video": video}, caption, chat, reply_to, thread)

    def send_audio(
        self,
        title: str = "Song",
        *,
        performer: str = "Artist",
        duration: int = 180,
        caption: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """An MP3 track (default "Song" by "Artist", 180 s)."""
        audio = self.population._file("audio") | {"duration": duration, "title": title}
        audio |= {"performer": performer, "file_name": f"{title}.mp3", "mime_type": "audio/mpeg"}
        return self._media({"audio": audio}, caption, chat, reply_to, thread)

    def send_voice(
        self,
        duration: int = 3,
        *,
        caption: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A voice note (default 3 s, OGG/Opus as Telegram's clients record it)."""
        voice = self.population._file("voice") | {"duration": duration, "mime_type": "audio/ogg"}
        return self._media({"voice": voice}, caption, chat, reply_to, thread)

    def send_sticker(
        self,
        emoji: str = "👍",
        *,
        set_name: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A static 512×512 sticker for ``emoji`` (default 👍), from ``set_name`` if given."""
        sticker = self.population._file("sticker") | {"type": "regular", "width": 512}
        sticker |= {"height": 512, "is_animated": False, "is_video": False, "emoji": emoji}
        if set_name is not None:
            sticker["set_name"] = set_name
        return self._media({"sticker": sticker}, None, chat, reply_to, thread)

    def send_animation(
        self,
        caption: str | None = None,
        *,
        duration: int = 3,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A GIF-style animation (default 3 s). As in Telegram, ``document`` is set too."""
        anim = self.population._file("animation") | {"width": 480, "height": 270}
        anim |= {"duration": duration, "file_name": "animation.mp4", "mime_type": "video/mp4"}
        document = {k: anim[k] for k in ("file_id", "file_unique_id", "file_size", "file_name")}
        content = {"animation": anim, "document": document | {"mime_type": "video/mp4"}}
        return self._media(content, caption, chat, reply_to, thread)

    def send_video_note(
        self,
        duration: int = 5,
        *,
        length: int = 384,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A round video message (default 5 s, 384 px across)."""
        note = self.population._file("video_note") | {"length": length, "duration": duration}
        return self._media({"video_note": note}, None, chat, reply_to, thread)

    def send_location(
        self,
        latitude: float = 51.5007,
        longitude: float = -0.1246,
        *,
        live_period: int | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A point on the map (default: Westminster); live for ``live_period`` seconds if
        given."""
        location: JSON = {"latitude": latitude, "longitude": longitude}
        if live_period is not None:
            location["live_period"] = live_period
        return self._send({"location": location}, chat, reply_to, thread)

    def send_contact(
        self,
        phone_number: str = "+15550100",
        first_name: str | None = None,
        *,
        last_name: str | None = None,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A phone contact. Without ``first_name`` the user shares their own contact (it then
        carries their ``user_id``, as from the "share my number" button)."""
        contact: JSON = {"phone_number": phone_number}
        if first_name is None:
            contact |= {"first_name": self.first_name, "user_id": self.id}
            if "last_name" in self._user:
                contact["last_name"] = self._user["last_name"]
        else:
            contact["first_name"] = first_name
            if last_name is not None:
                contact["last_name"] = last_name
        return self._send({"contact": contact}, chat, reply_to, thread)

    def send_poll(
        self,
        question: str,
        options: Iterable[str],
        *,
        anonymous: bool = True,
        multiple: bool = False,
        correct_option: int | None = None,
        chat: SimChat | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A poll (anonymous by default, one answer). ``correct_option`` makes it a quiz."""
        texts = list(options)
        if not 2 <= len(texts) <= 12:
            raise ValueError("a poll has 2 to 12 options")
        poll: JSON = {
            "id": self.population._query_id(),
            "question": question,
            "options": [
                {"persistent_id": str(i), "text": t, "voter_count": 0} for i, t in enumerate(texts)
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": anonymous,
            "type": "regular" if correct_option is None else "quiz",
            "allows_multiple_answers": multiple,
            "allows_revoting": True,
            "members_only": False,
        }
        if correct_option is not None:
            poll["correct_option_ids"] = [correct_option]
        message = self._send({"poll": poll}, chat, None, thread)
        self.population._poll(message)
        return message

    def send_dice(
        self,
        emoji: str = "🎲",
        *,
        value: int | None = None,
        chat: SimChat | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """An animated dice (default 🎲); ``value`` defaults to a random face."""
        faces = _DICE_FACES.get(emoji)
        if faces is None:
            raise ValueError(f"unknown dice emoji {emoji!r}; one of {''.join(_DICE_FACES)}")
        if value is None:
            value = self.population.rng.randint(1, faces)
        elif not 1 <= value <= faces:
            raise ValueError(f"a {emoji} dice shows 1 to {faces}, not {value}")
        return self._send({"dice": {"emoji": emoji, "value": value}}, chat, None, thread)

    def send_venue(
        self,
        title: str = "Big Ben",
        address: str = "London SW1A 0AA",
        *,
        latitude: float = 51.5007,
        longitude: float = -0.1246,
        chat: SimChat | None = None,
        reply_to: JSON | int | None = None,
        thread: Topic | int | None = None,
    ) -> JSON:
        """A venue (default: Big Ben). As in Telegram, ``location`` is set too."""
        location = {"latitude": latitude, "longitude": longitude}
        venue = {"location": location, "title": title, "address": address}
        return self._send({"venue": venue, "location": location}, chat, reply_to, thread)

    # -- buttons and inline mode -----------------------------------------------------------

    def press(self, message: JSON, data: str | None = None, *, text: str | None = None) -> JSON:
        """Press a callback button of the bot's message (``callback_query``), found by its
        ``callback_data`` (``data``) or its label (``text``), in the message's current version.

        Raises :class:`ButtonNotFound`, listing the buttons, when there is no such button.
        """
        if (data is None) == (text is None):
            raise TypeError("press() takes the button's data or its text=, not both")
        world = self.population.world
        msg = _current(world, _message_of(message))
        if (msg.get("from") or {}).get("id") != world.bot_user["id"]:
            raise ValueError("only buttons of the bot's own messages send callback queries")
        rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
        buttons = [b for row in rows for b in row]
        for button in buttons:
            if (data is not None and button.get("callback_data") == data) or (
                text is not None and button.get("text") == text and "callback_data" in button
            ):
                return self._callback(msg, button["callback_data"])
        wanted = f"data {data!r}" if data is not None else f"text {text!r}"
        have = [(b.get("text"), b.get("callback_data")) for b in buttons if "callback_data" in b]
        raise ButtonNotFound(
            f"no callback button with {wanted} in message {msg['message_id']} of chat "
            f"{msg['chat']['id']}; its callback buttons (text, data) are {have}"
        )

    def press_inline(self, inline_message_id: str, data: str) -> JSON:
        """Press a callback button of a message sent in inline mode (``callback_query`` with
        ``inline_message_id`` and no ``message``)."""
        return self._callback({"inline_message_id": inline_message_id}, data)

    def _callback(self, where: JSON, data: str) -> JSON:
        pop = self.population
        query: JSON = {"id": pop._query_id(), "from": self.as_dict()}
        if "inline_message_id" in where:
            query["inline_message_id"] = where["inline_message_id"]
            query["chat_instance"] = pop._chat_instance(where["inline_message_id"])
        else:
            query["message"] = where
            query["chat_instance"] = pop._chat_instance(int(where["chat"]["id"]))
        query["data"] = data
        return pop.push("callback_query", query)

    def inline_query(
        self, query: str, *, offset: str = "", chat_type: str | None = "sender"
    ) -> JSON:
        """Type ``@bot query`` in a chat (``inline_query``). ``chat_type`` is where: "sender"
        (default, the chat with the bot), "private", "group", "supergroup", "channel", or None
        (unknown)."""
        payload: JSON = {
            "id": self.population._query_id(),
            "from": self.as_dict(),
            "query": query,
            "offset": offset,
        }
        if chat_type is not None:
            payload["chat_type"] = chat_type
        return self.population.push("inline_query", payload)

    def choose_inline_result(
        self, result_id: str, query: str, *, has_keyboard: bool = False
    ) -> JSON:
        """Pick a result of an inline query (``chosen_inline_result``). With ``has_keyboard``
        (default False) the sent message has an ``inline_message_id``, for :meth:`press_inline`."""
        payload: JSON = {"result_id": result_id, "from": self.as_dict(), "query": query}
        if has_keyboard:
            payload["inline_message_id"] = self.population._token(18)
        return self.population.push("chosen_inline_result", payload)

    # -- reactions and polls ---------------------------------------------------------------

    def react(self, message: JSON, *emoji: str) -> JSON:
        """Set this user's reactions on ``message`` to ``emoji`` (none: remove them), as a
        ``message_reaction`` with the old and new lists."""
        msg = _message_of(message)
        chat = msg["chat"]
        if chat["type"] == "channel":
            raise ValueError("reactions in channels are anonymous: use channel.reaction_count()")
        key = (int(chat["id"]), int(msg["message_id"]))
        new = [{"type": "emoji", "emoji": e} for e in emoji]
        old = self._reactions.get(key, [])
        self._reactions[key] = new
        payload = {
            "chat": chat,
            "message_id": msg["message_id"],
            "user": self.as_dict(),
            "date": self.population.world.now(),
            "old_reaction": old,
            "new_reaction": new,
        }
        return self._chat_of(msg)._deliver("message_reaction", payload, admin_only=True)

    def answer_poll(self, poll: JSON | str, option_ids: Iterable[int]) -> JSON:
        """Vote (or, with no options, retract the vote) in a poll: a message with a poll, a
        Poll, or a known poll id. Counts are kept for :meth:`Population.poll_update`.

        A non-anonymous poll produces ``poll_answer`` (returned). An anonymous poll sends no
        answer, only its new state as a ``poll`` update (returned).
        """
        record = self.population._poll(poll)
        p = record.poll
        if p["is_closed"]:
            raise ValueError(f"poll {p['id']} is closed")
        chosen = sorted(set(option_ids))
        if any(not 0 <= i < len(p["options"]) for i in chosen):
            raise ValueError(f"poll {p['id']} has options 0..{len(p['options']) - 1}, not {chosen}")
        if len(chosen) > 1 and not p["allows_multiple_answers"]:
            raise ValueError(f"poll {p['id']} allows one answer, not {chosen}")
        votes = record.votes
        for i in votes.pop(self.id, []):
            p["options"][i]["voter_count"] -= 1
        for i in chosen:
            p["options"][i]["voter_count"] += 1
        if chosen:
            votes[self.id] = chosen
        p["total_voter_count"] = len(votes)
        if p["is_anonymous"]:
            return self.population.poll_update(p["id"])
        answer = {
            "poll_id": p["id"],
            "user": self.as_dict(),
            "option_ids": chosen,
            "option_persistent_ids": [p["options"][i]["persistent_id"] for i in chosen],
        }
        return self.population.push("poll_answer", answer)

    # -- membership ------------------------------------------------------------------------

    def join(self, chat: SimChat) -> JSON:
        """Join a group or channel (``chat_member``: → member), with the ``new_chat_members``
        service message in groups. Returns the ChatMemberUpdated."""
        chat._not_private("join")
        if chat.status(self) == "kicked":
            raise ValueError(f"{self!r} is banned from {chat!r}")
        if chat.status(self) in _PRESENT:
            raise ValueError(f"{self!r} is already a member of {chat!r}")
        if chat.type != "channel":
            chat._service(self, {"new_chat_members": [self.as_dict()]})
        return chat._change("chat_member", self.as_dict(), _member(self.as_dict()), self)

    def leave(self, chat: SimChat) -> JSON:
        """Leave a group or channel (``chat_member``: → left), with the ``left_chat_member``
        service message in groups."""
        chat._not_private("leave")
        if chat.status(self) not in _PRESENT:
            raise ValueError(f"{self!r} is not a member of {chat!r}")
        if chat.type != "channel":
            chat._service(self, {"left_chat_member": self.as_dict()})
        return chat._change("chat_member", self.as_dict(), _left(self.as_dict()), self)

    def request_join(self, chat: SimChat, *, bio: str | None = None) -> JSON:
        """Ask to join a supergroup or channel (``chat_join_request``)."""
        if chat.type not in ("supergroup", "channel"):
            raise ValueError(f"join requests exist for supergroups and channels, not {chat!r}")
        payload: JSON = {
            "chat": chat.as_dict(),
            "from": self.as_dict(),
            "user_chat_id": self.id,
            "date": self.population.world.now(),
        }
        if bio is not None:
            payload["bio"] = bio
        return chat._deliver("chat_join_request", payload, admin_only=True)

    def block_bot(self) -> JSON:
        """Block the bot (``my_chat_member`` in the private chat: member → kicked)."""
        bot = self.population.world.bot_user
        if self.chat.status(bot) == "kicked":
            raise ValueError(f"{self!r} has already blocked the bot")
        return self.chat._change("my_chat_member", bot, _kicked(bot, 0), self)

    def unblock_bot(self) -> JSON:
        """Unblock the bot (``my_chat_member``: kicked → member)."""
        bot = self.population.world.bot_user
        if self.chat.status(bot) != "kicked":
            raise ValueError(f"{self!r} has not blocked the bot")
        return self.chat._change("my_chat_member", bot, _member(bot), self)

    def boost(self, chat: SimChat) -> JSON:
        """Boost a supergroup or channel with Premium (``chat_boost``)."""
        if chat.type not in ("supergroup", "channel"):
            raise ValueError(f"only supergroups and channels can be boosted, not {chat!r}")
        now = self.population.world.now()
        boost = {
            "boost_id": self.population._token(),
            "add_date": now,
            "expiration_date": now + 30 * 86_400,
            "source": {"source": "premium", "user": self.as_dict()},
        }
        self._boosts.setdefault(chat.id, []).append(boost)
        return chat._deliver(
            "chat_boost", {"chat": chat.as_dict(), "boost": boost}, admin_only=True
        )

    def remove_boost(self, chat: SimChat) -> JSON:
        """Take back this user's latest boost of ``chat`` (``removed_chat_boost``)."""
        boosts = self._boosts.get(chat.id)
        if not boosts:
            raise ValueError(f"{self!r} has not boosted {chat!r}")
        boost = boosts.pop()
        payload = {
            "chat": chat.as_dict(),
            "boost_id": boost["boost_id"],
            "remove_date": self.population.world.now(),
            "source": boost["source"],
        }
        return chat._deliver("removed_chat_boost", payload, admin_only=True)

    # -- payments --------------------------------------------------------------------------

    def shipping_query(self, payload: str, *, address: Mapping[str, str] | None = None) -> JSON:
        """Choose a shipping address for a flexible-price invoice (``shipping_query``);
        ``address`` defaults to one in San Francisco."""
        query = {
            "id": self.population._query_id(),
            "from": self.as_dict(),
            "invoice_payload": payload,
            "shipping_address": dict(address or _SHIPPING_ADDRESS),
        }
        return self.population.push("shipping_query", query)

    def pre_checkout(
        self,
        payload: str,
        *,
        currency: str = "XTR",
        total_amount: int = 1,
        shipping_option_id: str | None = None,
        order_info: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Confirm a payment, which the bot must approve (``pre_checkout_query``). Defaults:
        1 Telegram Star (``XTR``)."""
        query: JSON = {
            "id": self.population._query_id(),
            "from": self.as_dict(),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        }
        if shipping_option_id is not None:
            query["shipping_option_id"] = shipping_option_id
        if order_info is not None:
            query["order_info"] = dict(order_info)
        return self.population.push("pre_checkout_query", query)

    def pay(
        self,
        payload: str,
        *,
        currency: str = "XTR",
        total_amount: int = 1,
        chat: SimChat | None = None,
    ) -> JSON:
        """The service message of a completed payment (``message`` with
        ``successful_payment``), by default of 1 Telegram Star in the chat with the bot."""
        pop = self.population
        payment = {
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
            "telegram_payment_charge_id": pop._token(24),
            # Star payments have no outside provider, so there is no provider charge id.
            "provider_payment_charge_id": "" if currency == "XTR" else pop._token(16),
        }
        return self._send({"successful_payment": payment}, chat, None, None)

    def purchase_paid_media(self, payload: str) -> JSON:
        """Buy paid media the bot sent with ``payload`` (``purchased_paid_media``)."""
        return self.population.push(
            "purchased_paid_media", {"from": self.as_dict(), "paid_media_payload": payload}
        )

    # -- business accounts -----------------------------------------------------------------

    @property
    def business_connection_id(self) -> str | None:
        """The id of this user's business connection with the bot, or None."""
        return self._business["id"] if self._business else None

    def connect_business(self, *, rights: Mapping[str, bool] | None = None) -> JSON:
        """Connect the bot to this (business) account (``business_connection``). ``rights``
        default to replying and reading messages."""
        if self._business is None:
            self._business = {"id": self.population._token(), "user": self.as_dict()}
            self._business |= {"user_chat_id": self.id}
        self._business |= {
            "date": self.population.world.now(),
            "rights": dict(rights or {"can_reply": True, "can_read_messages": True}),
            "is_enabled": True,
        }
        return self.population.push("business_connection", dict(self._business))

    def disconnect_business(self) -> JSON:
        """Disconnect the bot (``business_connection`` with ``is_enabled`` false)."""
        if self._business is None:
            raise ValueError(f"{self!r} has no business connection")
        self._business |= {"date": self.population.world.now(), "is_enabled": False}
        return self.population.push("business_connection", dict(self._business))

    def business_send(self, text: str, *, to: SimUser, reply_to: JSON | int | None = None) -> JSON:
        """A message between a business account and a customer (``business_message``): either
        this user is the business and ``to`` the customer, or the other way round. The chat is
        the customer's private chat with the business."""
        if self._business is not None and self._business["is_enabled"]:
            connection, customer = self._business, to
        elif to._business is not None and to._business["is_enabled"]:
            connection, customer = to._business, self
        else:
            raise ValueError(f"neither {self!r} nor {to!r} has connected the bot to a business")
        content = {"business_connection_id": connection["id"]} | _with_text(text)
        return self._send(content, customer.chat, reply_to, None, kind="business_message")

    def business_edit(self, message: JSON, text: str) -> JSON:
        """Edit a business message of this user (``edited_business_message``)."""
        if "business_connection_id" not in _message_of(message):
            raise ValueError("not a business message; use edit()")
        return self.edit(message, text)

    def business_delete(self, *messages: JSON) -> JSON:
        """Delete messages of one business chat (``deleted_business_messages``)."""
        msgs = [_message_of(m) for m in messages]
        if not msgs or any("business_connection_id" not in m for m in msgs):
            raise ValueError("business_delete() takes one or more business messages")
        first = msgs[0]
        if any(m["chat"]["id"] != first["chat"]["id"] for m in msgs):
            raise ValueError("deleted business messages must share one chat")
        payload = {
            "business_connection_id": first["business_connection_id"],
            "chat": first["chat"],
            "message_ids": [m["message_id"] for m in msgs],
        }
        return self.population.push("deleted_business_messages", payload)

    # -- guest queries and managed bots (Bot API 10.x) -------------------------------------

    def guest_send(self, text: str, *, chat: SimChat | None = None) -> JSON:
        """Summon the bot as a guest in a chat it is not a member of (``guest_message``, with a
        ``guest_query_id`` for ``answerGuestQuery``). ``chat`` defaults to this user's private
        chat; ``text`` usually mentions the bot."""
        target = chat or self.chat
        world = self.population.world
        msg: JSON = {
            "message_id": world.next_message_id(target.id),
            "from": self.as_dict(),
            "chat": target.as_dict(),
            "date": world.now(),
            "guest_query_id": self.population._query_id(),
        }
        return self.population.push("guest_message", msg | _with_text(text))

    def create_managed_bot(
        self, first_name: str = "Helper", *, username: str | None = None
    ) -> JSON:
        """Create a bot managed by the bot under test (``managed_bot``); ``username`` defaults
        to one derived from the name (bot usernames end in "bot")."""
        pop = self.population
        bot_id = pop._new_id(8_500_000_000, 8_999_999_999)
        if username is None:
            username = re.sub(r"\W", "", first_name.lower()) + f"_{bot_id % 10_000}_bot"
        bot = {"id": bot_id, "is_bot": True, "first_name": first_name, "username": username}
        if isinstance(pop.world, _Directory):
            pop.world.register_user(bot)
        return pop.push("managed_bot", {"user": self.as_dict(), "bot": bot})

    # -- internals -------------------------------------------------------------------------

    def _chat_of(self, message: JSON) -> SimChat:
        chat_id = int(message["chat"]["id"])
        chat = self.population._chats.get(chat_id)
        if chat is None:
            raise LookupError(f"chat {chat_id} is not a chat of this population")
        return chat

    def _media(
        self,
        content: JSON,
        caption: str | None,
        chat: SimChat | None,
        reply_to: JSON | int | None,
        thread: Topic | int | None,
    ) -> JSON:
        if caption:
            content |= _with_text(caption, caption=True)
        return self._send(content, chat, reply_to, thread)

    def _send(
        self,
        content: JSON,
        chat: SimChat | None,
        reply_to: JSON | int | None,
        thread: Topic | int | None,
        *,
        kind: str = "message",
    ) -> JSON:
        """Build, store and push a message of this user with ``content``."""
        pop = self.population
        world = pop.world
        target = chat or self.chat
        if kind == "message":
            self._check_can_send(target)
        chat_id = target.id
        replied = self._replied(target, reply_to)
        msg: JSON = {"message_id": world.next_message_id(chat_id)}
        thread_id = thread.id if isinstance(thread, Topic) else thread
        if thread_id is None and replied is not None and target.type == "supergroup":
            # A reply in a supergroup belongs to the thread of the message it answers.
            thread_id = replied.get("message_thread_id")
            if thread_id is None and not target.is_forum:
                thread_id = replied["message_id"]
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
        msg |= {"from": self.as_dict(), "chat": target.as_dict(), "date": world.now()}
        if thread_id is not None and target.is_forum:
            msg["is_topic_message"] = True
            if replied is None:
                # Telegram presents a topic's messages as replies to its creation message.
                replied = world.get_message(chat_id, thread_id)
        if replied is not None:
            if int(replied["chat"]["id"]) == chat_id:
                msg["reply_to_message"] = _bare(replied)
            else:
                msg["external_reply"] = {
                    "origin": _origin(replied),
                    "chat": replied["chat"],
                    "message_id": replied["message_id"],
                }
        msg |= content
        return pop.push(kind, msg)

    def _replied(self, chat: SimChat, reply_to: JSON | int | None) -> JSON | None:
        if reply_to is None:
            return None
        world = self.population.world
        if isinstance(reply_to, int):
            found = world.get_message(chat.id, reply_to)
            if found is None:
                raise LookupError(f"message {reply_to} of chat {chat.id} does not exist")
            return found
        return _current(world, _message_of(reply_to))

    def _check_can_send(self, chat: SimChat) -> None:
        if chat.type == "channel":
            raise ValueError(f"users do not write in channels; use {chat!r}.post()")
        if chat.type == "private":
            if chat.id != self.id:
                raise ValueError(f"{chat!r} is another user's chat with the bot")
            if chat.status(self.population.world.bot_user) == "kicked":
                # Writing to a blocked bot restarts it first, as the app's "Restart" does.
                self.unblock_bot()
            return
        status = chat.status(self)
        if status in ("left", "kicked") and self.id in chat._members:
            raise ValueError(f"{self!r} is not a member of {chat!r} ({status})")
        if status == "restricted" and not chat.member(self).get("can_send_messages"):
            raise ValueError(f"{self!r} is restricted in {chat!r} and cannot send messages")
        if status == "left":
            # Members not listed at creation join silently: setup pushes no update.
            chat._set(_member(self.as_dict()))
        if not chat.bot_present:
            raise ValueError(f"the bot is not in {chat!r}; add it with add_bot() first")
