"""Load the user's bot from an import string: ``module:attr`` or ``module:factory``."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from tgrunner.errors import ConfigError

__all__ = ["load_target"]


def load_target(target: str) -> Any:
    """Import ``module:attr`` and return the attribute.

    ``attr`` may be a dotted path (``module:app.router``). A plain function taking no required
    arguments is treated as a factory and called (its result is returned, awaited if it is a
    coroutine function is not supported here: factories must be synchronous). The current
    directory is importable, as with ``python -m``.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"Bad import string {target!r}: expected 'module:attribute', e.g. 'mybot:router' "
            "or 'mybot:create_bot'."
        )
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"Cannot import module {module_name!r}: no such module. Run from the folder "
                "that contains it, or install it."
            ) from exc
        raise ConfigError(f"Importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"Importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"Module {module_name!r} has no attribute {attr!r}. Check the name after ':'."
            ) from None
    if _is_factory(obj):
        obj = obj()
    return obj


def _is_factory(obj: Any) -> bool:
    if not inspect.isfunction(obj) or inspect.iscoroutinefunction(obj):
        return False
    params = inspect.signature(obj).parameters.values()
    return all(
        p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in params
    )
