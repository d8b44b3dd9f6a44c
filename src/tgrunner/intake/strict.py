"""Strict offsets (``--no-journal``): nothing on disk; Telegram keeps what is unfinished.

The offset confirmed to Telegram is the watermark's, the oldest unfinished update, so a crash
means redelivery, never loss. Telegram returns at most 100 updates past that offset, so at most
100 are in flight: one slow update at the head holds the rest of the window. This intake has
the journal's surface (``put``, ``started``, ``finished``, ``offset``), so the runtime treats
both alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tgrunner.errors import ConfigError
from tgrunner.intake.watermark import Watermark

__all__ = ["StrictIntake"]


class StrictIntake:
    """The watermark as an intake: ``offset`` moves as the oldest unfinished update finishes."""

    durable = False

    def __init__(self) -> None:
        self.watermark = Watermark()
        self.quarantined_now: list[int] = []

    @property
    def offset(self) -> int:
        """The offset that is safe to confirm (-1: nothing received yet)."""
        wm = self.watermark
        return wm.offset if wm.highest >= 0 else -1

    def unfinished(self) -> list[dict[str, Any]]:
        """Nothing is kept across runs: Telegram redelivers what was not confirmed."""
        return []

    def suspects(self) -> set[int]:
        """Attempts are not counted without a journal: nothing is suspect."""
        return set()

    def get(self, update_id: int) -> dict[str, Any] | None:
        """Nothing is kept: an update set aside here cannot be read back."""
        return None

    async def put(
        self, updates: Sequence[dict[str, Any]], *, ordered: bool = True
    ) -> list[dict[str, Any]]:
        """Register new updates with the watermark; return those not seen before.

        Strict offsets need a source whose ids only grow (polling): ``ordered=False`` raises
        ConfigError (a webhook needs the journal)."""
        if not ordered:
            raise ConfigError(
                "Strict offsets (--no-journal) need polling: a webhook's updates come in any "
                "order, and only the journal can answer them safely. Drop --no-journal."
            )
        received = self.watermark.received
        return [u for u in updates if received(u["update_id"])]

    def restart_ids(self) -> None:
        """Update ids restarted lower: start a new watermark."""
        self.watermark.reset()

    def started(self, update_id: int) -> None:
        """Attempts are not counted without a journal."""

    def finished(self, update_id: int, *, now: bool = False) -> None:
        """The update is done: the watermark may move (``now`` changes nothing here)."""
        self.watermark.finished(update_id)

    def uncount(self, update_ids: object) -> None:
        """Attempts are not counted without a journal."""

    async def flush(self) -> None:
        """Nothing to write."""

    async def close(self) -> None:
        """Nothing to close."""
