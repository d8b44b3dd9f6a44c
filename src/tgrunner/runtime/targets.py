"""What a target may be, and a hint for what it may not: the rules of ``tgrunner run TARGET``.

A target (``module:attr``, or the object itself from Python) is one of:

1. **A bot object**, run as it is: a tgrunner ``Router``, an aiogram ``Dispatcher`` (or a
   ``(dispatcher, bot)`` tuple), a python-telegram-bot ``Application``.
2. **A native handler**: an ``async def`` taking exactly two positional parameters without
   defaults, ``(update, bot)``, none of them named or annotated as another framework's
   (``ctx``, ``context``, ``message``, ``state``, an aiogram or PTB type).
3. **A function taking no arguments** (sync or ``async def``): tgrunner calls it. When it
   reaches ``dp.start_polling(...)`` / ``dp.run_polling(...)`` (aiogram) or
   ``application.run_polling(...)`` (PTB), tgrunner runs that Dispatcher or Application
   itself, with the options passed there; the framework's own polling never runs. This is
   how ``mybot:main`` runs unchanged. When it instead returns a bot object (1 or 2) without
   starting it, it was a factory: tgrunner runs what it returned. When it returns without
   doing either, the run ends with exit code 2.
4. With ``--factory`` (``factory=True``): any callable, called with no arguments (awaited
   when it returns an awaitable); what it returns must be 1 or 2. A factory that starts
   polling itself is refused (it is an entry point: drop ``--factory``).

Anything else is refused before anything is fetched, with a hint of what to point at:
``None``, a module, a class, an aiogram ``Router`` or ``Bot``, a PTB ``ApplicationBuilder`` or
``Bot``, a tgrunner ``Bot``, a route handler ``async def h(ctx)``, a PTB handler
``(update, context)``, an aiogram handler ``(message: Message)``, or a function that takes
arguments.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.frontends.native.context import Context
from tgrunner.frontends.native.router import Router

__all__ = ["HELP", "Shape", "check_handler", "refusal", "shape_of"]

HELP = """\
TARGET is 'module:attr'. It may be:
- a bot object: a tgrunner Router, an aiogram Dispatcher, a python-telegram-bot Application;
- an 'async def handler(update, bot)';
- a function taking no arguments (sync or async), such as main(), which tgrunner calls. When
  it reaches dp.start_polling(...) or application.run_polling(...), tgrunner runs that
  Dispatcher or Application itself, with the options passed there (the framework's own
  polling never runs). When it returns a bot object instead, tgrunner runs that.
With --factory, TARGET is called (any callable, sync or async) and must return a bot object.
--api-url and --token override the server and token in the code. Anything else (None, a
class, a handler taking ctx or (update, context), an aiogram Router) is refused with a hint,
before anything is fetched.
An aiogram Dispatcher whose Bot is created inside main() runs with the token from --token (or
$TGRUNNER_TOKEN, $BOT_TOKEN): tgrunner creates the Bot. When BOT_TOKEN is not set, tgrunner
sets it to the token given before it imports the module, so a module-level
Bot(token=os.getenv('BOT_TOKEN')) gets it too."""
"""The rules above, as ``tgrunner run --help`` shows them."""

Shape = Literal["object", "handler", "call"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_AIOGRAM_NAMES = {"message", "msg", "callback", "callback_query", "query", "call", "event"}
_AIOGRAM_TYPES = {"Message", "CallbackQuery", "InlineQuery", "FSMContext"}


def shape_of(obj: Any, spec: str, module: ModuleType | None = None) -> Shape:
    """Which of the rules of the module docstring ``obj`` follows (without ``--factory``):
    ``"object"`` (rule 1, or something :func:`~tgrunner.runtime.build.frontend_for` judges),
    ``"handler"`` (2) or ``"call"`` (3). ConfigError with a hint for what it cannot be.

    ``spec`` names ``obj`` in messages; ``module`` (the one it came from) lets the hint name
    the module's own Router, Dispatcher, Application or main.
    """
    problem = refusal(obj, spec, module)
    if problem is not None:
        raise ConfigError(problem)
    if not _is_function(obj):
        return "object"
    params = _signature(obj)
    if params is None:
        return "object"
    if not _required(params):
        return "call"
    return "handler"


def check_handler(fn: Callable[..., Any], spec: str, module: ModuleType | None = None) -> None:
    """ConfigError unless ``fn`` is a native handler, ``async def handler(update, bot)``."""
    problem = _function_problem(fn, spec, module, allow_call=False)
    if problem is not None:
        raise ConfigError(problem)


def refusal(obj: Any, spec: str, module: ModuleType | None = None) -> str | None:
    """Why ``obj`` cannot be a target, with a hint (None: it may be one). Framework objects
    are judged by their front-end, later."""
    where = _module_name(spec)
    if obj is None:
        return (
            f"{spec} is None, not a bot (is it only set once the bot starts?): point at "
            f"{_examples(module, where)}"
        )
    if isinstance(obj, ModuleType):
        return (
            f"{spec} is a module, not a bot: point at an object in it, e.g. "
            f"'{obj.__name__}:router', '{obj.__name__}:dp' or '{obj.__name__}:main'"
        )
    if inspect.isclass(obj):
        return (
            f"{spec} is a class, not a bot: point at an instance of it, or pass --factory to "
            "have tgrunner call it"
        )
    if isinstance(obj, Bot):
        return (
            f"{spec} is a tgrunner Bot (the Bot API client), not a bot to run: point at the "
            f"Router with its handlers, e.g. {_examples(module, where)}"
        )
    if _is_function(obj):
        return _function_problem(obj, spec, module, allow_call=True)
    return None


# -- functions -----------------------------------------------------------------------------------


def _is_function(obj: Any) -> bool:
    return inspect.isfunction(obj) or inspect.ismethod(obj) or _is_partial_function(obj)


def _is_partial_function(obj: Any) -> bool:
    func = getattr(obj, "func", None)
    return func is not None and hasattr(obj, "args") and inspect.isfunction(func)


def _signature(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        try:
            return list(inspect.signature(fn, eval_str=True).parameters.values())
        except Exception:  # annotations naming what only exists under TYPE_CHECKING
            return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def _required(params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    return [
        p
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _function_problem(
    fn: Callable[..., Any], spec: str, module: ModuleType | None, *, allow_call: bool
) -> str | None:
    params = _signature(fn)
    if params is None:
        return None
    required = _required(params)
    if not required and allow_call:
        return None
    where = _module_name(spec)
    kind = _foreign(params)
    if kind == "native":
        router = _find(module, lambda v: isinstance(v, Router)) or "router"
        return (
            f"{spec} looks like a route handler (it takes {_listed(params)}): point at the "
            f"Router it is registered on, e.g. {where}:{router}"
        )
    if kind == "ptb":
        hint = _found_or_main(module, where, _is_application, "application")
        return (
            f"{spec} looks like a python-telegram-bot handler (update, context): point at the "
            f"Application it is added to, {hint}"
        )
    if kind == "aiogram":
        hint = _found_or_main(module, where, _is_dispatcher, "dp")
        return (
            f"{spec} looks like an aiogram handler (it takes {_listed(params)}): point at the "
            f"Dispatcher, {hint}"
        )
    positional = [p for p in required if p.kind in _POSITIONAL]
    if len(positional) == 2 and len(required) == 2:
        if inspect.iscoroutinefunction(fn):
            return None
        return (
            f"{spec} takes (update, bot) but is not an 'async def': tgrunner awaits its "
            "handler, so define it with 'async def'"
        )
    return (
        f"{spec} is a function taking {_listed(params)}: tgrunner calls a target only when it "
        "takes no arguments (main, a factory), and a native handler takes exactly "
        f"(update, bot). Point at {_examples(module, where)}"
    )


def _foreign(params: list[inspect.Parameter]) -> str | None:
    """The framework whose handler these parameters look like: "native" (a route handler
    taking ctx), "ptb", "aiogram", or None."""
    for p in params:
        found = _framework_of(p.annotation)
        if found is not None:
            return found
    names = [p.name for p in params if p.kind in _POSITIONAL]
    if "ctx" in names:
        return "native"
    if len(names) >= 2 and names[1] == "context":
        return "ptb"
    if names and names[0] == "context":
        return "native"
    if (names and names[0] in _AIOGRAM_NAMES) or "state" in names:
        return "aiogram"
    return None


def _framework_of(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        text = annotation.replace(" ", "")
        last = text.rpartition(".")[2].partition("[")[0]
        if "ContextTypes" in text or "CallbackContext" in text:
            return "ptb"
        if last in _AIOGRAM_TYPES:
            return "aiogram"
        return "native" if last == "Context" else None
    origin = typing.get_origin(annotation) or annotation
    if origin is Context:
        return "native"
    package = (getattr(origin, "__module__", None) or "").partition(".")[0]
    return {"aiogram": "aiogram", "telegram": "ptb"}.get(package)


def _listed(params: list[inspect.Parameter]) -> str:
    return "(" + ", ".join(p.name for p in params) + ")" if params else "no arguments"


# -- hints ---------------------------------------------------------------------------------------


def _module_name(spec: str) -> str:
    return spec.partition(":")[0] or "mybot"


def _class_named(value: Any, name: str, package: str) -> bool:
    return any(
        c.__name__ == name and (c.__module__ or "").partition(".")[0] == package
        for c in type(value).__mro__
    )


def _is_dispatcher(value: Any) -> bool:
    return _class_named(value, "Dispatcher", "aiogram")


def _is_application(value: Any) -> bool:
    return _class_named(value, "Application", "telegram")


def _is_main(value: Any) -> bool:
    return inspect.isfunction(value) and value.__name__ == "main"


def _find(module: ModuleType | None, test: Callable[[Any], bool]) -> str | None:
    if module is None:
        return None
    for name, value in list(vars(module).items()):
        if not name.startswith("_") and test(value):
            return name
    return None


def _found_or_main(
    module: ModuleType | None, where: str, test: Callable[[Any], bool], usual: str
) -> str:
    """``e.g. mod:app`` for the module's own object (and its main, if any); only its main when
    it has no such object at module level (it builds it in main); else the usual name."""
    found, main = _find(module, test), _find(module, _is_main)
    if found:
        return f"e.g. {where}:{found}{_or_main(module, where)}"
    if main:
        return f"or, since {where} builds it inside a function, at that function: {where}:{main}"
    return f"e.g. {where}:{usual}"


def _or_main(module: ModuleType | None, where: str) -> str:
    main = _find(module, _is_main)
    return f", or at the function that starts it, {where}:{main}" if main else ""


def _examples(module: ModuleType | None, where: str) -> str:
    """What in ``module`` could be run: its Router, Dispatcher, Application or main, else the
    usual names."""
    found = [
        f"{where}:{name}"
        for name in (
            _find(module, lambda v: isinstance(v, Router)),
            _find(module, _is_dispatcher),
            _find(module, _is_application),
            _find(module, _is_main),
        )
        if name
    ]
    if found:
        return " or ".join(found)
    return (
        f"your Router, Dispatcher or Application, or the function that starts the bot, e.g. "
        f"{where}:router, {where}:dp, {where}:application or {where}:main"
    )
