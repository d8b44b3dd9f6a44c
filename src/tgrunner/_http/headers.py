"""Header bookkeeping shared by the server's and the client's parser callbacks."""

from __future__ import annotations

__all__ = ["add_header"]

# Lower-cased names of the headers seen so far: a dict hit instead of a decode and a lower()
# per header, bounded so a peer sending odd names cannot grow it without end.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 512


def add_header(headers: dict[str, str], name: bytes, value: bytes) -> None:
    """Record one header under its lower-cased name; a repeated one is comma-joined."""
    key = _NAMES.get(name)
    if key is None:
        key = name.decode("latin-1").lower()
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[name] = key
    text = value.decode("latin-1")
    # A membership test, not ``setdefault(...) is not text``: short values are interned, so
    # a repeat of the same value would be the very same object and be dropped.
    seen = headers.get(key)
    headers[key] = text if seen is None else f"{seen}, {text}"
