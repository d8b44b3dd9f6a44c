"""The Telegram Bot API specification as data, shipped with the package.

``load_spec()`` returns a :class:`Spec` built from ``api.json`` (Bot API 10.1). It drives
FakeTelegram (which methods exist, their parameters and result types) and the tests that check
coverage of every update kind.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

__all__ = ["Field", "Method", "Spec", "TypeDef", "load_spec"]


@dataclass(frozen=True, slots=True)
class Field:
    """One parameter of a method or one field of a type."""

    name: str
    types: tuple[str, ...]
    required: bool
    description: str


@dataclass(frozen=True, slots=True)
class Method:
    """A Bot API method: its exact name, parameters and the type expressions it may return."""

    name: str
    returns: tuple[str, ...]
    fields: tuple[Field, ...]
    description: str
    by_name: dict[str, Field]


@dataclass(frozen=True, slots=True)
class TypeDef:
    """A Bot API type. Abstract types list their concrete ``subtypes`` and have no fields."""

    name: str
    fields: tuple[Field, ...]
    subtypes: tuple[str, ...]
    subtype_of: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True)
class Spec:
    """The whole API: ``methods`` keyed by exact name, ``types`` keyed by name."""

    version: str
    methods: dict[str, Method]
    types: dict[str, TypeDef]
    _lower: dict[str, Method]

    def method(self, name: str) -> Method | None:
        """The method called ``name``, matched case-insensitively as Telegram does; else None."""
        return self._lower.get(name.lower())

    def update_kinds(self) -> list[str]:
        """The optional fields of ``Update``: one per kind of update, in spec order."""
        return [f.name for f in self.types["Update"].fields if f.name != "update_id"]


def _fields(raw: dict) -> tuple[Field, ...]:
    return tuple(
        Field(f["name"], tuple(f["types"]), bool(f["required"]), f.get("description", ""))
        for f in raw.get("fields", ())
    )


@functools.cache
def load_spec() -> Spec:
    """Parse the shipped ``api.json`` once and cache the result."""
    raw = json.loads(resources.files(__package__).joinpath("api.json").read_bytes())
    methods = {
        name: Method(
            name, tuple(m["returns"]), fs, "\n".join(m["description"]), {f.name: f for f in fs}
        )
        for name, m in raw["methods"].items()
        for fs in (_fields(m),)
    }
    types = {
        name: TypeDef(
            name,
            _fields(t),
            tuple(t.get("subtypes", ())),
            tuple(t.get("subtype_of", ())),
            "\n".join(t["description"]),
        )
        for name, t in raw["types"].items()
    }
    lower = {name.lower(): m for name, m in methods.items()}
    return Spec(raw["version"], methods, types, lower)
