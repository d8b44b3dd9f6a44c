"""Ordering keys: which updates must be handled one at a time.

The scheduler handles updates that share a key one at a time, in update_id order, and runs
updates that share no key concurrently. A key function maps an update to its keys::

    default_keys({"update_id": 1, "message": {"chat": {"id": 5}, ...}})   # ("c:5",)

Key strings, for every kind of update in Bot API 10.1:

- ``"c:<chat id>"`` where the update belongs to a chat: message, edited_message, channel_post,
  edited_channel_post, business_message, edited_business_message, deleted_business_messages,
  guest_message, message_reaction, message_reaction_count, my_chat_member, chat_member,
  chat_join_request, chat_boost, removed_chat_boost; callback_query when it carries its
  message; business_connection (the private chat with the account's owner,
  ``user_chat_id``); poll_answer from an anonymous voter (``voter_chat``).
- ``"u:<user id>"`` where there is only a user: inline_query, chosen_inline_result,
  callback_query from an inline message, shipping_query, pre_checkout_query,
  purchased_paid_media, poll_answer; managed_bot (the managed bot, whose owner can change).
- ``"p:<poll id>"`` for poll.
- no key where there is nothing to order by; such an update runs freely.

A chat has the same key whatever kind of update names it, so a message and a chat_member
update in chat 5 are ordered against each other. Business and guest chats use their chat id
too: when such an id equals another chat's id, the two are only ordered more than they need to
be, never less.

Keys are plain strings built from Telegram's ids, so they are equal in every process. The
first key is the primary key, which routes an update to a worker process or a shard with a
stable hash.

What a key function may return (:func:`normalise_keys` reads it): a ``str`` or ``bytes`` is
one key, a tuple, list or other iterable is many keys, and ``None`` is no key. A key listed
twice counts once.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

__all__ = ["Key", "KeyFunc", "chat_and_user_keys", "default_keys", "normalise_keys"]

Key = Hashable
"""An ordering key: a ``"c:<chat_id>"``-style string by default, or any hashable value."""

KeyFunc = Callable[[Mapping[str, Any]], Iterable[Hashable] | None]
"""A function from an update to its ordering keys, primary key first.

It returns one key as a ``str`` (or ``bytes``), many as a tuple or another iterable, or
``None`` (or an empty tuple) for none.
"""

_Extract = Callable[[Any], str | None]


def _chat(obj: Mapping[str, Any]) -> str:
    return f"c:{obj['chat']['id']}"


def _sender(obj: Mapping[str, Any]) -> str:
    return f"u:{obj['from']['id']}"


def _callback_query(obj: Mapping[str, Any]) -> str:
    # Inaccessible messages carry their chat too; inline-mode buttons have no message at all.
    message = obj.get("message")
    if message is not None:
        return f"c:{message['chat']['id']}"
    return f"u:{obj['from']['id']}"


def _poll(obj: Mapping[str, Any]) -> str:
    return f"p:{obj['id']}"


def _poll_answer(obj: Mapping[str, Any]) -> str | None:
    user = obj.get("user")
    if user is not None:
        return f"u:{user['id']}"
    chat = obj.get("voter_chat")
    return None if chat is None else f"c:{chat['id']}"


def _business_connection(obj: Mapping[str, Any]) -> str:
    return f"c:{obj['user_chat_id']}"


def _managed_bot(obj: Mapping[str, Any]) -> str:
    return f"u:{obj['bot']['id']}"


def _unknown(obj: Any) -> str | None:
    # A kind newer than this table: order by its chat or sender if it names one.
    if not isinstance(obj, Mapping):
        return None
    chat = obj.get("chat")
    if isinstance(chat, Mapping) and "id" in chat:
        return f"c:{chat['id']}"
    sender = obj.get("from") or obj.get("user")
    if isinstance(sender, Mapping) and "id" in sender:
        return f"u:{sender['id']}"
    return None


_BY_KIND: dict[str, _Extract] = {
    "message": _chat,
    "edited_message": _chat,
    "channel_post": _chat,
    "edited_channel_post": _chat,
    "business_connection": _business_connection,
    "business_message": _chat,
    "edited_business_message": _chat,
    "deleted_business_messages": _chat,
    "guest_message": _chat,
    "message_reaction": _chat,
    "message_reaction_count": _chat,
    "inline_query": _sender,
    "chosen_inline_result": _sender,
    "callback_query": _callback_query,
    "shipping_query": _sender,
    "pre_checkout_query": _sender,
    "purchased_paid_media": _sender,
    "poll": _poll,
    "poll_answer": _poll_answer,
    "my_chat_member": _chat,
    "chat_member": _chat,
    "chat_join_request": _chat,
    "chat_boost": _chat,
    "removed_chat_boost": _chat,
    "managed_bot": _managed_bot,
}


def _primary(update: Mapping[str, Any]) -> tuple[str | None, Any]:
    """The primary key and the kind's payload (None, None when the update has no kind)."""
    for kind, obj in update.items():
        if kind == "update_id":
            continue
        extract = _BY_KIND.get(kind, _unknown)
        try:
            return extract(obj), obj
        except (KeyError, TypeError):
            # A payload without the fields the spec requires: order it by nothing rather
            # than fail the whole intake on one malformed update.
            return None, obj
    return None, None


def default_keys(update: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """The update's chat key, else its user's key, else its poll's key, else no key.

    Returns a tuple of at most one string; see the module docstring for the key of each
    update kind. A malformed payload gets no key rather than an error.
    """
    # Most updates are messages: skip the generic scan for them.
    message = update.get("message")
    if message is not None:
        try:
            return (f"c:{message['chat']['id']}",)
        except (KeyError, TypeError):
            return ()
    key, _ = _primary(update)
    return () if key is None else (key,)


def chat_and_user_keys(update: Mapping[str, Any]) -> tuple[Hashable, ...]:
    """The :func:`default_keys` key, then the sender's ``"u:<user id>"`` key when different.

    With these keys a user's updates are also handled one at a time across chats (a private
    message, an inline query and a callback from an inline message wait for each other).
    The sender is the payload's ``from``, else its ``user``; updates with neither (a channel
    post, a poll, reaction counts) get only the default key.
    """
    key, obj = _primary(update)
    try:
        sender = obj.get("from") or obj.get("user")
        user_key = f"u:{sender['id']}" if sender is not None else None
    except (AttributeError, KeyError, TypeError):  # no payload, or a malformed sender
        user_key = None
    if key is None:
        return () if user_key is None else (user_key,)
    if user_key is None or user_key == key:
        return (key,)
    return (key, user_key)


def normalise_keys(keys: object) -> tuple[Hashable, ...]:
    """What a key function returned, as a tuple of distinct keys in their first order.

    A ``str`` or ``bytes`` is one key (never its characters), ``None`` is no key, and any
    other iterable is many keys. Raises ``TypeError`` for anything else or an unhashable key.
    """
    if type(keys) is tuple:
        found: tuple[Any, ...] = keys
    elif keys is None:
        return ()
    elif isinstance(keys, str | bytes):
        return (keys,)
    else:
        try:
            found = tuple(keys)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                f"the key function returned {reprlib.repr(keys)}, not keys: return a str "
                "for one key, a tuple of keys, or None for no key"
            ) from None
    try:
        if len(found) == 1:
            hash(found[0])
            return found
        # A key listed twice would wait behind itself forever.
        return tuple(dict.fromkeys(found)) if found else ()
    except TypeError as exc:
        raise TypeError(
            f"the key function returned {reprlib.repr(keys)}, with an unhashable key ({exc}); "
            "keys must be hashable, like a str or an int"
        ) from None
