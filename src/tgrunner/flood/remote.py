"""Flood control's view of shared buckets (:class:`~tgrunner.protocols.SharedBuckets`): when
they fail, the caller goes on with its own process's buckets instead of failing its call."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from tgrunner.errors import TgrunnerError
from tgrunner.flood.buckets import Rate
from tgrunner.protocols import SharedBuckets

__all__ = ["Remote"]

log = logging.getLogger("tgrunner.flood.limiter")

_WARN_EVERY = 60.0  # seconds between two warnings that the shared buckets failed


class Remote:
    """``shared`` buckets (None: none), each failure logged at most once a minute."""

    def __init__(self, shared: SharedBuckets | None, clock: Callable[[], float]) -> None:
        self.shared = shared
        self._clock = clock
        self._warned_at = -math.inf

    async def reserve(self, key: str, rate: Rate) -> float | None:
        """A slot of the shared bucket ``key``: seconds to wait for it; None without shared
        buckets, or when they failed (use this process's own then)."""
        shared = self.shared
        if shared is None:
            return None
        try:
            return max(0.0, await shared.reserve(key, rate))
        except TgrunnerError as exc:  # FloodStoreUnavailable
            self._failed(exc)
            return None

    async def pause(self, key: str, seconds: float) -> None:
        """Pause the shared bucket ``key`` (nothing without shared buckets, or when they
        fail: the pause holds in this process only)."""
        shared = self.shared
        if shared is not None:
            try:
                await shared.pause(key, seconds)
            except TgrunnerError as exc:
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning("flood control goes on with this process's own buckets: %s", exc)
