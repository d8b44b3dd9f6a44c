"""Accounts the bot acts for or beside: business connections and their messages, guest
queries, and bots managed by the bot under test (Bot API 10.x)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from tgrunner.testing.fake.users.chats import SimChat
from tgrunner.testing.fake.users.members import Directory
from tgrunner.testing.fake.users.messages import JSON, message_of, with_text
from tgrunner.testing.fake.users.person import Person

__all__ = ["BusinessActions"]


class BusinessActions(Person):
    """Business connections and messages, guest messages and managed bots."""

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

    def business_send(self, text: str, *, to: Person, reply_to: JSON | int | None = None) -> JSON:
        """A message between a business account and a customer (``business_message``): either
        this user is the business and ``to`` the customer, or the other way round. The chat is
        the customer's private chat with the business."""
        customer: Person
        if self._business is not None and self._business["is_enabled"]:
            connection, customer = self._business, to
        elif to._business is not None and to._business["is_enabled"]:
            connection, customer = to._business, self
        else:
            raise ValueError(f"neither {self!r} nor {to!r} has connected the bot to a business")
        content = {"business_connection_id": connection["id"]} | with_text(text)
        return self._send(content, customer.chat, reply_to, None, kind="business_message")

    def business_edit(self, message: JSON, text: str) -> JSON:
        """Edit a business message of this user (``edited_business_message``)."""
        if "business_connection_id" not in message_of(message):
            raise ValueError("not a business message; use edit()")
        return self.edit(message, text)

    def business_delete(self, *messages: JSON) -> JSON:
        """Delete messages of one business chat (``deleted_business_messages``)."""
        msgs = [message_of(m) for m in messages]
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
        return self.population.push("guest_message", msg | with_text(text))

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
        if isinstance(pop.world, Directory):
            pop.world.register_user(bot)
        return pop.push("managed_bot", {"user": self.as_dict(), "bot": bot})
