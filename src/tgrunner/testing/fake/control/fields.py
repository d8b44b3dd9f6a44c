"""Reading control requests: typed fields of a JSON body and query parameters, each refusal
a :class:`ControlError` that says which field is wrong and what it should be."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from tgrunner._http.server import Request

__all__ = [
    "JSON",
    "ControlError",
    "bounded",
    "check_fields",
    "integer",
    "number",
    "query_of",
    "string",
    "type_name",
]

JSON = dict[str, Any]


class ControlError(Exception):
    """A request the control API refuses: ``status`` (4xx) and a description of what to do."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def type_name(value: object) -> str:
    """How a JSON value's type is named in errors: "a string", "null"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def check_fields(body: JSON, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """Refuse a field not in ``allowed``, and a ``required`` one that is absent or null."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ControlError(
            400, f"unknown field {unknown[0]!r}; this endpoint takes {', '.join(allowed)}"
        )
    for name in required:
        if body.get(name) is None:
            raise ControlError(400, f"missing field {name!r}")


def string(body: JSON, name: str) -> str | None:
    """A string field; None when absent or null."""
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ControlError(400, f"field {name!r} must be a string, not {type_name(value)}")


def integer(body: JSON, name: str) -> int | None:
    """An integer field (not a boolean, not 1.0); None when absent or null."""
    value = body.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ControlError(400, f"field {name!r} must be an integer, not {type_name(value)}")


def number(body: JSON, name: str, default: float, maximum: float) -> float:
    """A number of seconds from 0 to ``maximum``; ``default`` when absent or null."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(400, f"field {name!r} must be a number, not {type_name(value)}")
    return bounded(name, float(value), maximum)


def bounded(name: str, value: float, maximum: float) -> float:
    """``value`` if it is from 0 to ``maximum`` seconds (NaN is not)."""
    if not 0 <= value <= maximum:
        raise ControlError(400, f"{name!r} must be from 0 to {maximum:g} seconds, not {value:g}")
    return value


def query_of(request: Request) -> dict[str, str]:
    """The query string's parameters; a malformed one is refused."""
    try:
        pairs = parse_qsl(request.query.decode(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise ControlError(400, "the query string is malformed; use ?after=N&wait=S") from None
    return dict(pairs)
