"""Checks shared by the frozen options of every layer: each raises
:class:`~tgrunner.errors.ConfigError` with a message naming the option and what it means."""

from __future__ import annotations

import math

from tgrunner.errors import ConfigError

__all__ = ["check_seconds"]


def check_seconds(value: object, name: str, meaning: str) -> None:
    """``value`` must be a finite number of seconds above 0 (not a bool); ``meaning`` says
    what the option is for, in the message."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a positive number of seconds ({meaning}), got {value!r}")
