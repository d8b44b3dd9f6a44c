"""One call FakeTelegram answered: :class:`RecordedRequest`, the unit of its record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RecordedRequest"]


@dataclass(slots=True)
class RecordedRequest:
    """One call the fake answered: ``method`` is the canonical name (``sendMessage``),
    ``params`` the validated parameters (raw ones when validation failed), ``time`` the Unix
    time it arrived, ``status`` the HTTP status, ``response`` the result or the error envelope.
    """

    method: str
    params: dict[str, Any]
    token: str
    time: float
    status: int
    response: Any

    @property
    def ok(self) -> bool:
        return self.status == 200
