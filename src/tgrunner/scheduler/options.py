"""The scheduler's limits, validated when they are built."""

from __future__ import annotations

from dataclasses import dataclass

from tgrunner.checks import check_seconds
from tgrunner.errors import ConfigError

__all__ = ["SchedulerOptions"]


def _whole(value: object, name: str, low: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(
            f"{name} must be a whole number of at least {low} ({meaning}), got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    """Limits of the scheduler; invalid values raise :class:`~tgrunner.errors.ConfigError`.

    - ``concurrency``: most handlers and hooks holding a slot at once, default 500.
    - ``max_pending_per_key``: most items, queued or running, that share one key, default
      1000; above ``max_pending`` it acts as ``max_pending``.
    - ``max_pending``: most items queued or running in all, the memory bound, default 10000.
      At least ``concurrency``.
    - ``handler_timeout``: seconds a handler may run, counted from its start; default None
      (no limit).
    - ``cancel_grace``: seconds a cancelled handler or hook may take to finish before it is
      reported stuck, default 5.
    - ``hook_timeout``: seconds an awaited ``on_error`` or ``on_timeout`` hook may run before
      it is cancelled, default 10.
    """

    concurrency: int = 500
    max_pending_per_key: int = 1000
    max_pending: int = 10_000
    handler_timeout: float | None = None
    cancel_grace: float = 5.0
    hook_timeout: float = 10.0

    def __post_init__(self) -> None:
        _whole(self.concurrency, "concurrency", 1, "how many handlers may run at once")
        _whole(self.max_pending, "max_pending", 1, "how many updates may be queued or running")
        _whole(
            self.max_pending_per_key,
            "max_pending_per_key",
            1,
            "how many updates of one chat may be queued or running",
        )
        if self.max_pending < self.concurrency:
            raise ConfigError(
                f"max_pending ({self.max_pending}) is below concurrency ({self.concurrency}): "
                "it counts running handlers too. Raise max_pending or lower concurrency."
            )
        if self.handler_timeout is not None:
            check_seconds(
                self.handler_timeout, "handler_timeout", "a handler's time limit; None for no limit"
            )
        check_seconds(
            self.cancel_grace, "cancel_grace", "how long a cancelled handler may take to stop"
        )
        check_seconds(
            self.hook_timeout, "hook_timeout", "how long an on_error or on_timeout hook may run"
        )
