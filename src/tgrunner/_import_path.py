"""Functions found again by their import path, ``"module:qualname"``: what another process (a
job worker), or this one after a restart (a broadcast's ``build``), imports to call them.

- :func:`function_path` names a function by its path, refusing what has none: a lambda, a
  closure, a function defined in another function, a builtin. A function of a script run as
  ``python bot.py`` is named ``bot:name``.
- :func:`import_path` imports what a path names (the current folder is importable, as with
  ``python -m``).
- :func:`check_importable` checks, when the object is made, that its path leads back to it, so
  a mistake shows where it is made, not in another process later.

Each takes the error class to raise (``JobError`` for jobs, ``ConfigError`` for broadcasts)
and ``what``, the words that name the function in its messages.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["check_importable", "find_by_path", "function_path", "import_path"]


def function_path(fn: Callable[..., Any], *, what: str, error: type[Exception]) -> str:
    """``"module:qualname"`` of ``fn``; ``error`` when there is no such path (a lambda, a
    closure, a function defined in another function, a builtin)."""
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__name__", repr(fn))
    if not isinstance(qualname, str) or not isinstance(module, str):
        raise error(
            f"{name!r} has no import path: {what} must be a function defined at the top level "
            "of a module. Wrap it in one."
        )
    if "<" in qualname:  # <lambda>, <locals>
        raise error(
            f"{qualname!r} of {module!r} cannot be imported by its path (a lambda, or a "
            f"function defined inside another): define {what} at the top level of its module."
        )
    if module == "__main__":
        module = main_module_name(what=what, error=error)
    return f"{module}:{qualname}"


def main_module_name(*, what: str, error: type[Exception]) -> str:
    """The name by which the script running as ``__main__`` is imported: its ``-m`` name, or
    its file's stem; ``error`` for an interactive session or ``python -c``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:  # python -m package.module
        return str(spec.name)
    filename = getattr(main, "__file__", None)
    if not filename:
        raise error(
            f"{what} cannot be defined in an interactive session or a string of code: it is "
            "imported by its path. Define it in a module."
        )
    return Path(filename).stem


def _walk(obj: Any, qualname: str, module_name: str, error: type[Exception]) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise error(f"module {module_name!r} has no {qualname!r}: was it renamed?")
    return obj


def import_path(path: str, *, what: str, error: type[Exception]) -> Any:
    """Import what ``"module:qualname"`` names; ``error`` when the module cannot be imported
    or has no such name."""
    module_name, _, qualname = path.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(
            f"cannot import the module {module_name!r} of {what} ({exc}): run from the folder "
            "that holds it, or install it"
        ) from None
    return _walk(module, qualname, module_name, error)


def find_by_path(path: str, *, what: str, error: type[Exception]) -> Any:
    """Like :func:`import_path`, but a path into the script running as ``__main__``
    (``bot:build`` while ``python bot.py`` runs) is looked up in the script itself, which is
    not imported a second time."""
    module_name, _, qualname = path.partition(":")
    main = sys.modules.get("__main__")
    try:
        main_name = main_module_name(what=what, error=error)
    except error:
        main_name = None
    if main is not None and module_name == main_name:
        return _walk(main, qualname, module_name, error)
    return import_path(path, what=what, error=error)


def check_importable(obj: Any, path: str, *, what: str, error: type[Exception]) -> None:
    """Check that ``path`` (from :func:`function_path`) leads back to ``obj``; ``error`` when
    it does not. A path into a script run as ``python bot.py`` is looked up in the script,
    which is not imported again."""
    if getattr(obj, "__module__", None) == "__main__":
        # Importing the script here again would run it twice: look the name up in it.
        main = sys.modules["__main__"]
        qualname = path.partition(":")[2]
        if _walk_or_none(main, qualname) is not obj:
            raise error(f"{what}: the script has no top-level {qualname!r} that is it")
        return
    try:
        found = import_path(path, what=what, error=error)
    except error as exc:
        raise error(f"{what} cannot be found by its path, {path}: {exc}") from None
    if found is not obj:
        raise error(f"{path} names another object than {what}: give each its own top-level name")


def _walk_or_none(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj
