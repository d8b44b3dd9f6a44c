"""Build functions of the broadcast tests, at the top level of a module as a broadcast's
``build`` must be: the tests' processes import them by path, as a restarted bot would."""

from __future__ import annotations

import asyncio
from typing import Any


def personal(chat_id: int | str) -> dict[str, Any]:
    """A text of its own for each chat."""
    return {"text": f"hello {chat_id}"}


async def personal_later(chat_id: int | str) -> dict[str, Any]:
    """An async build: the same text as :func:`personal`, after a turn of the loop."""
    await asyncio.sleep(0)
    return {"text": f"hello {chat_id}", "disable_notification": True}


def empty_for_odd(chat_id: int) -> dict[str, Any]:
    """An empty text (a 400 from Telegram) for odd chat ids."""
    return {"text": "" if chat_id % 2 else "even"}


def raises_for_odd(chat_id: int) -> dict[str, Any]:
    """A build that fails for odd chat ids."""
    if chat_id % 2:
        raise LookupError(f"no name for {chat_id}")
    return {"text": "even"}


def not_a_dict(chat_id: int) -> Any:
    """A build that returns the text alone, not a dict of parameters."""
    return "just a text"


def two_arguments(chat_id: int, name: str) -> dict[str, Any]:
    """A build with a parameter too many."""
    return {"text": name}
