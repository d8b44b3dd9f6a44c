"""What the broadcast outbox holds, as values: the states of a broadcast and of its chats,
a broadcast's :class:`Progress` (with :func:`describe`, its one-line summary), what it sends
(:class:`BroadcastRecord`), a send's :class:`Result` and a sender's :class:`Step`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from tgrunner.errors import ConfigError

__all__ = [
    "BROADCAST_STATES",
    "LIVE_STATES",
    "RECIPIENT_STATES",
    "BroadcastRecord",
    "BroadcastState",
    "Progress",
    "RecipientState",
    "Result",
    "Step",
    "check_chat_ids",
    "describe",
    "duration",
]

BroadcastState = Literal["running", "paused", "cancelled", "done"]
RecipientState = Literal["pending", "inflight", "sent", "blocked", "missing", "failed"]
BROADCAST_STATES: tuple[BroadcastState, ...] = ("running", "paused", "cancelled", "done")
LIVE_STATES: frozenset[str] = frozenset({"running", "paused"})
"""States of a broadcast that a sender holds (and resumes after a restart)."""
RECIPIENT_STATES: tuple[RecipientState, ...] = (
    "pending", "inflight", "sent", "blocked", "missing", "failed",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a broadcast stands. Times are epoch seconds.

    - ``total``: its chats; ``pending`` + ``inflight`` + ``sent`` + ``blocked`` + ``missing``
      + ``failed`` == ``total``.
    - ``rate``: chats done per second lately, as its sender last wrote it (0 before).
    - ``beat``: when its sender last wrote a step (None before the first); ``ended``: when it
      was done or cancelled; ``owner``: the pid of the last process that took it.
    """

    id: int
    state: BroadcastState
    total: int
    pending: int
    inflight: int
    sent: int
    blocked: int
    missing: int
    failed: int
    rate: float
    created: float
    beat: float | None
    ended: float | None
    owner: int | None

    @property
    def finished(self) -> int:
        """Chats whose send ended: sent, blocked, missing or failed."""
        return self.sent + self.blocked + self.missing + self.failed

    @property
    def remaining(self) -> int:
        """Chats still to send to: pending or inflight."""
        return self.pending + self.inflight

    @property
    def eta(self) -> float | None:
        """Seconds until done at ``rate``, for a running broadcast that has one; else None."""
        if self.state != "running" or self.rate <= 0:
            return None
        return self.remaining / self.rate

    def counts(self) -> dict[str, int]:
        """Chats per recipient state (every state a key)."""
        return {name: getattr(self, name) for name in RECIPIENT_STATES}


@dataclass(frozen=True, slots=True)
class BroadcastRecord:
    """What a broadcast sends: ``text`` with ``params`` (the other sendMessage parameters), or
    what ``build`` (``"module:qualname"``) returns per chat, over ``params``; ``paid``: with
    ``allow_paid_broadcast`` pacing. ``token`` names its lock file."""

    id: int
    token: str
    text: str | None
    params: dict[str, Any]
    build: str | None
    paid: bool


@dataclass(frozen=True, slots=True)
class Result:
    """How one inflight chat's send ended: ``state`` (``"pending"`` to send it again later),
    the sent message's ``message_id``, or the ``error`` Telegram gave."""

    seq: int
    state: RecipientState
    message_id: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What :meth:`Outbox.step` did: the chats it marked inflight, ``(seq, chat_id)`` in
    order, and the broadcast's progress after it."""

    rows: list[tuple[int, int | str]]
    progress: Progress


def check_chat_ids(chat_ids: Iterable[Any]) -> list[int | str]:
    """The chats of a broadcast, in order, each once: an ``int`` id or an ``"@username"``;
    ConfigError naming the first that is neither."""
    seen: dict[int | str, None] = {}
    for i, chat in enumerate(chat_ids):
        if isinstance(chat, int) and not isinstance(chat, bool):
            seen[int(chat)] = None
        elif isinstance(chat, str) and len(chat) > 1 and chat.startswith("@"):
            seen[chat] = None
        else:
            raise ConfigError(
                f"chat #{i} of the broadcast, {chat!r}, is not a chat id (an int) or an '@username'"
            )
    return list(seen)


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"`` or ``"2 h 07 min"``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def describe(p: Progress) -> str:
    """One line of a broadcast's progress: done of total, per state, rate and time left."""
    line = (
        f"{p.finished}/{p.total} done ({p.sent} sent, {p.blocked} blocked, {p.missing} "
        f"missing, {p.failed} failed)"
    )
    if p.state == "running" and p.rate > 0:
        line += f", {p.rate:.1f}/s"
        if p.eta is not None and p.remaining:
            line += f", about {duration(p.eta)} left"
    return line
