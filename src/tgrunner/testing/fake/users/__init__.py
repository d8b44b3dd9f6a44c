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

from tgrunner.testing.fake.users.callbacks import ButtonNotFound
from tgrunner.testing.fake.users.chats import SimChat, Topic
from tgrunner.testing.fake.users.entities import parse_entities, utf16_len
from tgrunner.testing.fake.users.population import Population
from tgrunner.testing.fake.users.user import SimUser

__all__ = [
    "ButtonNotFound",
    "Population",
    "SimChat",
    "SimUser",
    "Topic",
    "parse_entities",
    "utf16_len",
]
