"""The core of a simulated user: who they are, their private chat with the bot, and how their
messages are built, checked and sent. The actions of :class:`SimUser` are mixins built on it."""

from __future__ import annotations

from tgrunner.testing.fake.users.chats import SimChat, Topic
from tgrunner.testing.fake.users.members import Directory, as_kicked, as_member
from tgrunner.testing.fake.users.messages import (
    JSON,
    bare,
    current,
    edited,
    message_of,
    origin,
    with_text,
)
from tgrunner.testing.fake.users.protocol import Roster

__all__ = ["Person"]

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


class Person:
    """What every action of a :class:`~tgrunner.testing.fake.users.SimUser` builds on: the
    user's identity, their private chat with the bot (``chat``), text messages, blocking the
    bot, and the building and sending of messages."""

    def __init__(self, population: Roster, user: JSON) -> None:
        self.population = population
        self._user = user
        if isinstance(population.world, Directory):
            population.world.register_user(user)
        chat = {"id": user["id"], "type": "private"}
        chat |= {k: user[k] for k in ("first_name", "last_name", "username") if k in user}
        self.chat = SimChat(population, chat, user=self)
        # State of the action mixins: reactions set, boosts given, the business connection.
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
        return self._send(with_text(text), chat, reply_to, thread)

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
        msg = message_of(message)
        chat = self._chat_of(msg)
        return self.send(text, chat=chat, reply_to=msg, thread=msg.get("message_thread_id"))

    def edit(self, message: JSON, text: str) -> JSON:
        """Change the text (or caption) of one of this user's messages: ``edited_message``, or
        ``edited_business_message`` for a business message."""
        msg = current(self.population.world, message_of(message))
        if (msg.get("from") or {}).get("id") != self.id:
            raise ValueError(f"{self!r} can edit only their own messages")
        kind = "edited_business_message" if "business_connection_id" in msg else "edited_message"
        return self.population.push(kind, edited(msg, text, self.population.world))

    def forward(self, message: JSON, to_chat: SimChat | None = None) -> JSON:
        """Forward ``message`` into ``to_chat`` (default: this user's chat with the bot), with
        its ``forward_origin``."""
        msg = message_of(message)
        if msg.get("has_protected_content"):
            raise ValueError(f"message {msg['message_id']} is protected from forwarding")
        # A forward keeps the content and the first origin; context stays behind.
        content = {"forward_origin": msg.get("forward_origin") or origin(msg)}
        content |= {k: v for k, v in msg.items() if k not in _NOT_FORWARDED}
        return self._send(content, to_chat, None, None)

    # -- the private chat with the bot -----------------------------------------------------

    def block_bot(self) -> JSON:
        """Block the bot (``my_chat_member`` in the private chat: member → kicked)."""
        bot = self.population.world.bot_user
        if self.chat.status(bot) == "kicked":
            raise ValueError(f"{self!r} has already blocked the bot")
        return self.chat._change("my_chat_member", bot, as_kicked(bot, 0), self)

    def unblock_bot(self) -> JSON:
        """Unblock the bot (``my_chat_member``: kicked → member)."""
        bot = self.population.world.bot_user
        if self.chat.status(bot) != "kicked":
            raise ValueError(f"{self!r} has not blocked the bot")
        return self.chat._change("my_chat_member", bot, as_member(bot), self)

    # -- internals -------------------------------------------------------------------------

    def _chat_of(self, message: JSON) -> SimChat:
        chat_id = int(message["chat"]["id"])
        chat: SimChat | None = self.population._chats.get(chat_id)
        if chat is None:
            raise LookupError(f"chat {chat_id} is not a chat of this population")
        return chat

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
                msg["reply_to_message"] = bare(replied)
            else:
                msg["external_reply"] = {
                    "origin": origin(replied),
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
        return current(world, message_of(reply_to))

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
            chat._set(as_member(self.as_dict()))
        if not chat.bot_present:
            raise ValueError(f"the bot is not in {chat!r}; add it with add_bot() first")
