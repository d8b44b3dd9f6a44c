"""The simulated user: :class:`SimUser`, the core of :mod:`.person` with every action mixed in."""

from __future__ import annotations

from tgrunner.testing.fake.users.business import BusinessActions
from tgrunner.testing.fake.users.callbacks import CallbackActions
from tgrunner.testing.fake.users.media import MediaActions
from tgrunner.testing.fake.users.membership import MembershipActions
from tgrunner.testing.fake.users.payments import PaymentActions
from tgrunner.testing.fake.users.reactions import ReactionActions

__all__ = ["SimUser"]


class SimUser(
    MediaActions,
    CallbackActions,
    ReactionActions,
    MembershipActions,
    PaymentActions,
    BusinessActions,
):
    """A simulated person. ``id`` is their user id (and their private chat's id); ``chat`` is
    that private chat. Actions default to the private chat; pass ``chat=`` to act in a group.

    Message actions take ``chat`` (a :class:`SimChat`), ``reply_to`` (a message or a message id
    in that chat) and ``thread`` (a :class:`Topic` or a thread id) and return the Message.
    """
