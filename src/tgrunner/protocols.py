"""The small Protocols where the layers of the data path meet.

::

    source ─> intake ─> scheduler ─> executor ─> front-end handler ─> client ─> Telegram

- A :class:`Source` yields batches of updates and is told which of them it may confirm to
  Telegram (they are durable in the intake, or finished in strict mode).
- An :class:`Executor` takes a ready update and returns an awaitable that ends when the update
  is finished (inline: the handler itself; worker processes: the worker's report).
- A :class:`Transport` sends one HTTP exchange for the Bot API client.
- :class:`SharedBuckets` are flood control's token buckets shared by processes or machines.

Later parts add implementations of these, not branches in the runner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # flood's package imports this module; the annotation alone needs Rate
    from tgrunner.flood.buckets import Rate

__all__ = ["Executor", "Response", "SharedBuckets", "Source", "Transport", "Update"]

Update = dict[str, Any]
"""An update as Telegram sent it: a JSON object with ``update_id`` and one kind."""


@runtime_checkable
class Source(Protocol):
    """Where updates come from: polling, a webhook server, a scale-out stream.

    A source whose update ids may come in any order (a webhook) says so with a class
    attribute ``ordered = False``; the runtime then dedups by id rather than by the highest
    id, and needs the journal. Without the attribute a source is taken as ordered."""

    async def start(self) -> None:
        """Check credentials and get ready; raise ConfigError when it cannot work."""

    async def next_batch(self, capacity: int) -> list[Update]:
        """Return the next updates in the order they came, at most about ``capacity``.

        Waits until there is at least one. Raises ConfigError when the source cannot go on.
        """

    def confirm(self, offset: int) -> None:
        """Every update this source returned below ``offset`` may be forgotten by Telegram.

        Called once the intake holds them durably (journal), or once they finished (strict).
        """

    async def close(self) -> None:
        """Stop; tell Telegram what was confirmed, when the source can. Safe to call twice."""


@runtime_checkable
class Executor(Protocol):
    """Where a ready update's handler runs."""

    async def start(self) -> None:
        """Get ready (load the bot, start workers)."""

    def execute(self, update: Update) -> Awaitable[Any]:
        """Run the handler on ``update``; the awaitable ends when the update is finished."""

    async def close(self) -> None:
        """Release what ``start`` took. Safe to call twice."""


class Response(Protocol):
    """An HTTP response as the client sees it: lower-cased header names; ``elapsed``, the
    seconds from the request's start to its whole response (the Bot reports it to its
    ``on_call`` hook)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float


@runtime_checkable
class Transport(Protocol):
    """One HTTP exchange with the Bot API server, for :class:`~tgrunner.client.bot.Bot`.

    Its responses carry ``elapsed`` (see :class:`Response`): a Bot whose calls are observed
    (``on_call``, ``--metrics``) reads it after each answer.

    A transport never resends a request on its own: whether a request may be sent again is
    the Bot's decision, per method.
    """

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and return the response; raise TransportError when none came."""

    async def close(self) -> None:
        """Close every connection. Safe to call twice."""


@runtime_checkable
class SharedBuckets(Protocol):
    """Token buckets by key, shared by the worker processes of one machine (a file) or by
    machines (Redis/Valkey), with the semantics of :class:`tgrunner.flood.buckets.Bucket`: a
    reservation is a GCRA slot (tolerance ``(burst - 1) / per_second``), and a pause lets no
    call on its key leave before its end. Built by :func:`tgrunner.flood.shared.open_shared`.

    :class:`~tgrunner.flood.limiter.FloodControl` uses them for the global buckets
    (``"bulk"``, ``"paid"``) and, with ``--flood-store``, for chats' buckets and 429 pauses
    too (``"chat:<id>"``).

    Every method raises :class:`~tgrunner.errors.FloodStoreUnavailable` when the store cannot
    answer.
    """

    async def reserve(self, key: str, rate: Rate) -> float:
        """Take ``key``'s next slot under ``rate``: the seconds from now until the call may
        leave (0.0: now)."""

    async def pause(self, key: str, seconds: float) -> None:
        """Let no call on ``key`` leave for ``seconds`` from now (a 429's ``retry_after``); a
        later end wins over an earlier one."""

    async def close(self) -> None:
        """Release the file or the connections. Safe to call twice."""
