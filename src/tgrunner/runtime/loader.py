"""Import the user's bot from an import string, ``module:attr``.

:func:`import_target` imports the module (the current directory is importable, as with
``python -m``) and returns the attribute, without calling anything: what a target may be, and
what is called, is decided by :mod:`tgrunner.runtime.targets`.

When the user's code raises (while its module is imported, or later when its factory or entry
point is called), :func:`user_code_error` turns the exception into a
:class:`~tgrunner.errors.UserCodeError` carrying the traceback trimmed to the user's frames:
tgrunner's own frames, importlib's, and the event loop machinery that called the user's code
are left out. A ``SyntaxError`` keeps its file, line and caret.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tgrunner.errors import ConfigError, UserCodeError

__all__ = ["Target", "import_target", "user_code_error"]

_OURS = str(Path(__file__).resolve().parents[1]) + os.sep
_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep
# What calls the user's entry point or factory for tgrunner: left out when it comes before the
# user's first frame (asyncio's frames after it, from the user's own awaits, are kept).
_CALLERS = (
    os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep,
    os.path.dirname(os.path.abspath(concurrent.futures.__file__)) + os.sep,
    os.path.abspath(threading.__file__),
    "uvloop" + os.sep,
)

# Exceptions a missing token raises in a framework's constructor, by "module.qualname".
_TOKEN_ERRORS = {"aiogram.utils.token.TokenValidationError", "telegram.error.InvalidToken"}


@dataclass(frozen=True, slots=True)
class Target:
    """What an import string names: ``obj``, the attribute ``attr`` of ``module``."""

    spec: str
    module: ModuleType
    attr: str
    obj: Any


def split_spec(spec: str) -> tuple[str, str]:
    """``("module", "attr")`` of ``"module:attr"``; ConfigError when it is not that shape."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        what = module_name or spec
        raise ConfigError(
            f"Bad target {spec!r}: expected 'module:attribute', the module and the object in it "
            f"that tgrunner should run, e.g. '{what}:dp' (an aiogram Dispatcher), "
            f"'{what}:application' (a python-telegram-bot Application), '{what}:router' (a "
            f"tgrunner Router) or '{what}:main' (the function that starts the bot)."
        )
    return module_name, attr


def import_target(spec: str) -> Target:
    """Import ``module`` of ``module:attr`` and return its attribute (nothing is called).

    ``attr`` may be a dotted path (``module:app.router``). The current directory is put on
    ``sys.path`` first, as ``python -m`` does. An exception raised by the module while it is
    imported becomes a :class:`~tgrunner.errors.UserCodeError` with its trimmed traceback.
    """
    module_name, attr = split_spec(spec)
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(
                f"Cannot import module {module_name!r}: no such module. Run from the folder "
                "that contains it, or install it."
            ) from None
        raise user_code_error(exc, f"importing {module_name!r} raised") from None
    except Exception as exc:
        raise user_code_error(exc, f"importing {module_name!r} raised") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"Module {module_name!r} has no attribute {attr!r}. Check the name after ':'."
            ) from None
    return Target(spec, module, attr, obj)


def user_code_error(exc: BaseException, what: str) -> UserCodeError:
    """A UserCodeError for ``exc`` raised by the user's code; ``what`` starts its one line
    (``"importing 'mybot' raised"``). Its ``traceback`` shows only the user's frames."""
    te = traceback.TracebackException.from_exception(exc)
    _trim(te, set())
    line = f"{what} {type(exc).__name__}: {exc}"
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if kind in _TOKEN_ERRORS:
        line += " (no token? pass --token, or set BOT_TOKEN)"
    return UserCodeError(f"{line} (traceback above)", "".join(te.format()))


def _trim(te: traceback.TracebackException, seen: set[int]) -> None:
    """Drop tgrunner's and importlib's frames, and the event loop's before the user's first,
    from ``te`` and the exceptions chained to it."""
    if id(te) in seen:
        return
    seen.add(id(te))
    frames = [f for f in te.stack if not _internal(f.filename)]
    while frames and frames[0].filename.startswith(_CALLERS):
        frames.pop(0)
    te.stack = traceback.StackSummary.from_list(frames)
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _trim(chained, seen)


def _internal(filename: str) -> bool:
    if filename.startswith("<frozen importlib"):
        return True
    path = os.path.abspath(filename)
    return path.startswith(_OURS) or path.startswith(_IMPORTLIB)
