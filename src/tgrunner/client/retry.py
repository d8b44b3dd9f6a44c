"""When the Bot may send a request again: the retry policy, per method.

A transport never resends (:mod:`tgrunner.client.transports`). The Bot resends a request at
most once, and only when both hold:

- the method is *safe to repeat*: it reads (``get*``), or sets a value that a second call sets
  to the same (``setWebhook``, ``deleteWebhook``, ``setMyCommands``, …);
- the connection broke before any byte of a response arrived (``answered`` is False), and
  not by a timeout: the caller's time is up then.

Everything else (``send*``, ``copy*``, ``forward*``, edits, deletes, answers, …) is never
resent: a second ``sendMessage`` is a second message, and an edit or a delete sent twice
fails the second time although the first worked.
"""

from __future__ import annotations

from tgrunner.client.transports.errors import TransportError, TransportTimeout

__all__ = ["SAFE_METHODS", "is_safe", "may_resend"]

SAFE_METHODS = frozenset(
    {
        "setWebhook",
        "deleteWebhook",
        "setMyCommands",
        "deleteMyCommands",
        "setMyName",
        "setMyDescription",
        "setMyShortDescription",
        "setChatMenuButton",
        "setMyDefaultAdministratorRights",
    }
)
"""Methods besides ``get*`` whose second call changes nothing the first did not."""


def is_safe(method: str) -> bool:
    """True for a method that may be sent twice: ``get*`` or one of :data:`SAFE_METHODS`."""
    return method.startswith("get") or method in SAFE_METHODS


def may_resend(method: str, error: TransportError) -> bool:
    """True when ``method``'s request, which failed with ``error``, may be sent once more."""
    if isinstance(error, TransportTimeout) or error.answered:
        return False
    return is_safe(method)
