"""What the runner tells a person: one line when it starts, one summary when it stops.

Both are logged at INFO on the ``tgrunner`` logger, in the spirit of uvicorn's "Uvicorn running
on …"::

    @echo_bot (id 123) · native · polling https://api.telegram.org · journal
    .tgrunner/123/journal.sqlite3 · concurrency 500 · transport fast

    stopped (clean) after 12.3 s: 1200 handled (3 failed, 0 timed out), 5 replayed; 97.6
    updates/s
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["start_line", "stop_summary"]


def start_line(
    me: Mapping[str, Any],
    *,
    frontend: str,
    source: str,
    intake: str,
    concurrency: int,
    transport: str,
    proxy: str | None = None,
) -> str:
    """``@username (id N) · front-end · source · intake · concurrency N · transport NAME``,
    with `` via proxy http://host:port`` (never its password) when there is one."""
    name = f"@{me['username']}" if me.get("username") else str(me.get("first_name") or "bot")
    if proxy:
        parts = urlsplit(proxy)
        transport += f" via proxy {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return " · ".join(
        (
            f"{name} (id {me.get('id')})",
            frontend,
            source,
            intake,
            f"concurrency {concurrency}",
            f"transport {transport}",
        )
    )


def stop_summary(
    *,
    how: str,
    seconds: float,
    handled: int,
    failed: int,
    timed_out: int,
    replayed: int,
    stuck: int = 0,
    quarantined: int = 0,
) -> str:
    """``stopped (HOW) after S s: N handled (F failed, T timed out), R replayed; X updates/s``,
    with the stuck and quarantined counts when there are any."""
    rate = handled / seconds if seconds > 0 else 0.0
    extra = "".join(
        f", {n} {what}" for n, what in ((stuck, "stuck"), (quarantined, "quarantined")) if n
    )
    took = f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2f}"
    return (
        f"stopped ({how}) after {took} s: {handled} handled ({failed} failed, "
        f"{timed_out} timed out), {replayed} replayed{extra}; {rate:.1f} updates/s"
    )
