"""The option checks every transport shares, so a bad option fails the same way on each."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["check_base_url", "check_limits"]


def check_base_url(base_url: str) -> SplitResult:
    """``http://host[:port]`` or ``https://…``, with no query, fragment or user; else ValueError."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the base URL must be http://host[:port] or https://…: {base_url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"the base URL may not have a query, fragment or user: {base_url!r}")
    return parts


def check_limits(pool_size: int, idle_timeout: float | None, max_body_size: int | None) -> None:
    """The pool and size limits of a transport; ValueError saying which is wrong."""
    if pool_size < 1:
        raise ValueError("pool_size must be at least 1")
    if idle_timeout is not None and idle_timeout <= 0:
        raise ValueError("idle_timeout must be more than 0 seconds, or None for no limit")
    if max_body_size is not None and max_body_size < 1:
        raise ValueError("max_body_size must be at least 1 byte, or None for no limit")
