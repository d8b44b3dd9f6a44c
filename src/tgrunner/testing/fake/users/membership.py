"""Membership: a simulated user joins and leaves groups and channels, asks to join them, and
boosts them."""

from __future__ import annotations

from tgrunner.testing.fake.users.chats import SimChat
from tgrunner.testing.fake.users.members import PRESENT, as_left, as_member
from tgrunner.testing.fake.users.messages import JSON
from tgrunner.testing.fake.users.person import Person

__all__ = ["MembershipActions"]


class MembershipActions(Person):
    """Joining, leaving, join requests and boosts; admin actions are :class:`SimChat`'s."""

    def join(self, chat: SimChat) -> JSON:
        """Join a group or channel (``chat_member``: → member), with the ``new_chat_members``
        service message in groups. Returns the ChatMemberUpdated."""
        chat._not_private("join")
        if chat.status(self) == "kicked":
            raise ValueError(f"{self!r} is banned from {chat!r}")
        if chat.status(self) in PRESENT:
            raise ValueError(f"{self!r} is already a member of {chat!r}")
        if chat.type != "channel":
            chat._service(self, {"new_chat_members": [self.as_dict()]})
        return chat._change("chat_member", self.as_dict(), as_member(self.as_dict()), self)

    def leave(self, chat: SimChat) -> JSON:
        """Leave a group or channel (``chat_member``: → left), with the ``left_chat_member``
        service message in groups."""
        chat._not_private("leave")
        if chat.status(self) not in PRESENT:
            raise ValueError(f"{self!r} is not a member of {chat!r}")
        if chat.type != "channel":
            chat._service(self, {"left_chat_member": self.as_dict()})
        return chat._change("chat_member", self.as_dict(), as_left(self.as_dict()), self)

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
