"""The contiguous watermark of finished update_ids: the only offset that is safe to confirm.

Telegram forgets every update below the ``offset`` of a ``getUpdates`` call. Confirming an
update that is still running loses it on a crash, which is what runners that confirm on fetch
do. The watermark confirms an update only when it and every update received before it have
finished.

Update ids increase but are not contiguous (``allowed_updates`` filters kinds out on
Telegram's side), so the watermark follows the ids as *received*, not integer ranges.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Watermark"]


class Watermark:
    """Track received and finished update_ids; ``offset`` is the safe confirmation offset.

    ``received(update_id)`` must be called in increasing id order (as ``getUpdates`` returns
    them); an id at or below the highest already received is a redelivery and is reported as
    such so the caller can skip it. ``finished(update_id)`` may come in any order. Both are
    O(1) amortised.
    """

    __slots__ = ("_done", "_highest", "_open", "_start")

    def __init__(self, start_offset: int = 0) -> None:
        self._start = start_offset
        self._open: deque[int] = deque()
        self._done: set[int] = set()
        # The highest id ever received; ids at or below it are redeliveries.
        self._highest = start_offset - 1

    def reset(self) -> None:
        """Update ids restarted lower (Telegram does so after a quiet week): start afresh.

        Updates still open from before are forgotten here; their finish is then ignored.
        """
        self._open.clear()
        self._done.clear()
        self._highest = self._start - 1

    def received(self, update_id: int) -> bool:
        """Record an update as taken in. False if it was already received (skip it)."""
        if update_id <= self._highest:
            return False
        self._highest = update_id
        self._open.append(update_id)
        return True

    def finished(self, update_id: int) -> None:
        """Record an update as done (handled, failed, timed out: anything but dropped)."""
        open_ = self._open
        if open_ and open_[0] == update_id:
            open_.popleft()
            done = self._done
            while open_ and open_[0] in done:
                done.discard(open_.popleft())
        elif open_ and open_[0] < update_id <= self._highest:
            self._done.add(update_id)
        # Else it is not open (finished twice, or from before a reset): nothing to record.

    @property
    def offset(self) -> int:
        """The offset to send to Telegram: the oldest unfinished id, or one past the highest."""
        return self._open[0] if self._open else self._highest + 1

    @property
    def in_flight(self) -> int:
        """How many received updates are not yet confirmed by the watermark."""
        return len(self._open)

    @property
    def highest(self) -> int:
        """The highest update_id received so far (``start_offset - 1`` before any)."""
        return self._highest
