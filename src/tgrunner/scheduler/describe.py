"""How the scheduler names an item in its log lines: ``update 42``, else a short repr."""

from __future__ import annotations

import reprlib
from collections.abc import Mapping

__all__ = ["describe", "short_repr"]

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80

short_repr = _repr.repr


def describe(item: object) -> str:
    """``"update <id>"`` for an update, else a repr cut to about 80 characters."""
    if isinstance(item, Mapping) and "update_id" in item:
        return f"update {item['update_id']}"
    return _repr.repr(item)
