"""Chats of the simulation: private chats, groups, supergroups, forums and channels, their
members, forum topics and channel posts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tgrunner.testing.fake.users.members import (
    PRESENT,
    Directory,
    as_admin,
    as_kicked,
    as_left,
    as_member,
    as_restricted,
)
from tgrunner.testing.fake.users.messages import JSON, current, edited, message_of, with_text
from tgrunner.testing.fake.users.protocol import Member, Roster

__all__ = ["SimChat", "Topic"]


@dataclass(frozen=True, slots=True)
class Topic:
    """A forum topic: ``id`` is its ``message_thread_id``; ``created`` its service message."""

    id: int
    name: str
    created: JSON


class SimChat:
    """A chat of the simulation: a user's private chat, a group, supergroup, forum or channel.

    ``id``, ``type`` and ``title`` mirror the Chat object; :meth:`as_dict` returns it. ``user``
    is the other party of a private chat (None for other chats). Admin
    actions (``promote``, ``ban``, ``add_bot``...) are performed ``by`` a user, by default the
    chat's owner (its first member, or a user created for the purpose).
    """

    def __init__(
        self,
        population: Roster,
        chat: JSON,
        *,
        members: Iterable[Member] = (),
        with_bot: bool = True,
        user: Member | None = None,
    ) -> None:
        self.population = population
        self._chat = chat
        self.user = user
        self._members: dict[int, JSON] = {}
        self._owner: Member | None = None
        population._chats[self.id] = self
        world = population.world
        world.register_chat(chat)
        bot = world.bot_user
        if user is not None:
            self._set(as_member(bot))
            return
        for i, sim in enumerate(members):
            if i == 0:
                self._owner = sim
                self._set({"status": "creator", "user": sim.as_dict(), "is_anonymous": False})
            else:
                self._set(as_member(sim.as_dict()))
        self._set(as_admin(bot, chat["type"]) if with_bot else as_left(bot))

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
    def owner(self) -> Member:
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

    def status(self, user: Member | JSON) -> str:
        """A user's (or the bot's, given ``world.bot_user``) status here; ``"left"`` if never
        a member."""
        uid = int(user["id"]) if isinstance(user, dict) else user.id
        return str(self._members.get(uid, {}).get("status", "left"))

    def member(self, user: Member | JSON) -> JSON:
        """The ChatMember object of a user (or the bot) in this chat."""
        u = user if isinstance(user, dict) else user.as_dict()
        return dict(self._members.get(int(u["id"])) or as_left(u))

    @property
    def bot_present(self) -> bool:
        return self.status(self.population.world.bot_user) in PRESENT

    # -- admin actions ---------------------------------------------------------------------

    def add_bot(self, *, by: Member | None = None, admin: bool = False) -> JSON:
        """Add the bot (``my_chat_member``: left → member, or administrator when ``admin``,
        default False; always administrator in channels), with the ``new_chat_members``
        service message in groups. Returns the ChatMemberUpdated."""
        self._not_private("add the bot to")
        bot = self.population.world.bot_user
        by = by or self.owner
        new = as_admin(bot, self.type) if admin or self.type == "channel" else as_member(bot)
        update = self._change("my_chat_member", bot, new, by)
        if self.type != "channel":
            self._service(by, {"new_chat_members": [bot]})
        return update

    def kick_bot(self, *, by: Member | None = None) -> JSON:
        """Remove the bot (``my_chat_member``: → left in basic groups, kicked elsewhere)."""
        self._not_private("remove the bot from")
        bot = self.population.world.bot_user
        new = as_left(bot) if self.type == "group" else as_kicked(bot, 0)
        return self._change("my_chat_member", bot, new, by or self.owner)

    def promote(self, user: Member, *, by: Member | None = None, title: str | None = None) -> JSON:
        """Make ``user`` an administrator (``chat_member``); ``title`` is the custom title."""
        self._not_private("promote in")
        new = as_admin(user.as_dict(), self.type, can_be_edited=True)
        if title is not None:
            new["custom_title"] = title
        return self._change("chat_member", user.as_dict(), new, by or self.owner)

    def demote(self, user: Member, *, by: Member | None = None) -> JSON:
        """Make an administrator a plain member again (``chat_member``)."""
        self._not_private("demote in")
        return self._change(
            "chat_member", user.as_dict(), as_member(user.as_dict()), by or self.owner
        )

    def restrict(self, user: Member, *, by: Member | None = None, until: int = 0) -> JSON:
        """Forbid ``user`` to send anything until the Unix time ``until`` (0, the default:
        forever). Supergroups only, as in Telegram."""
        if self.type != "supergroup":
            raise ValueError(f"members can be restricted only in supergroups, not in {self!r}")
        u = user.as_dict()
        return self._change("chat_member", u, as_restricted(u, until), by or self.owner)

    def ban(self, user: Member, *, by: Member | None = None, until: int = 0) -> JSON:
        """Ban ``user`` until ``until`` (0, the default: forever): ``chat_member`` → kicked,
        with the ``left_chat_member`` service message when they were in a group."""
        self._not_private("ban in")
        by = by or self.owner
        u = user.as_dict()
        was_in = self.status(user) in PRESENT
        update = self._change("chat_member", u, as_kicked(u, until), by)
        if was_in and self.type != "channel":
            self._service(by, {"left_chat_member": u})
        return update

    def unban(self, user: Member, *, by: Member | None = None) -> JSON:
        """Lift a ban (``chat_member``: kicked → left); the user may join again."""
        self._not_private("unban in")
        return self._change(
            "chat_member", user.as_dict(), as_left(user.as_dict()), by or self.owner
        )

    def create_topic(
        self, name: str, *, by: Member | None = None, icon_color: int = 0x6FB9F0
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
        msg = message_of(message)
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
        msg |= with_text(text)
        return self.population.push("channel_post", msg)

    def edit_post(self, message: JSON, text: str) -> JSON:
        """A new text for a post (``edited_channel_post``)."""
        self._require_channel()
        msg = current(self.population.world, message_of(message))
        return self.population.push("edited_channel_post", edited(msg, text, self.population.world))

    # -- internals -------------------------------------------------------------------------

    def _set(self, member: JSON) -> None:
        uid = int(member["user"]["id"])
        self._members[uid] = member
        world = self.population.world
        if isinstance(world, Directory):
            if member["status"] in ("left",):
                world.remove_member(self.id, uid)
            else:
                world.set_member(self.id, member)

    def _deliver(self, kind: str, payload: JSON, *, admin_only: bool = False) -> JSON:
        """Push ``payload`` if the bot would get it: it must be in the chat, and be an
        administrator for ``admin_only`` kinds. Otherwise the event still happened, unheard."""
        status = self.status(self.population.world.bot_user)
        heard = status in ("administrator", "creator") if admin_only else status in PRESENT
        if heard or self.type == "private":
            return self.population.push(kind, payload)
        return payload

    def _change(self, kind: str, user: JSON, new: JSON, by: Member) -> JSON:
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

    def _service(self, sender: Member, content: JSON) -> JSON:
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
