"""Front-ends: how a bot written for some framework is driven by the runtime.

A front-end turns the user's object (a tgrunner Router, an aiogram ``Dispatcher``, a PTB
``Application``) into a :class:`Frontend`: one handler per update plus what the runtime must
know to poll for it.

Framework adapters are found by name: :data:`ADAPTERS` maps the top-level package of the
user's object (``"aiogram"``, ``"telegram"``) to the import string of its adapter, which is
imported (with the framework) only when such an object is run. This package imports no
adapter and nothing of the runtime.

Entry points (an aiogram ``async def main()`` that awaits ``dp.start_polling(bot)``, a PTB
``def main()`` that calls ``application.run_polling()``) are run unchanged: while tgrunner
calls one, :func:`intercepting` makes each imported framework's polling call hand a
:class:`PollingCall` to a :class:`Handoff` (the runtime), which runs it on tgrunner. The
framework's own polling loop never runs. :data:`ENTRY_HOOKS` names, per framework, the
function that installs that for the duration of the call.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from tgrunner.keys import KeyFunc

if TYPE_CHECKING:
    from tgrunner.client.bot import Bot

__all__ = [
    "ADAPTERS",
    "ENTRY_HOOKS",
    "Frontend",
    "Handoff",
    "PollingCall",
    "detect",
    "intercepting",
]

UpdateHandler = Callable[[dict[str, Any], "Bot"], Awaitable[Any]]


@dataclass(slots=True)
class Frontend:
    """What the runtime needs to drive a bot.

    - ``handler(update, bot)``: handles one update (a dict as Telegram sent it).
    - ``token`` / ``api_url``: taken from the framework's own bot when it has one (None: use
      what the caller gave).
    - ``keys``: the ordering keys this framework needs (None: the settings' default).
    - ``allowed_updates``: the kinds the bot handles (None: Telegram's setting).
    - ``startup`` / ``shutdown``: awaited once before the first fetch / after the last update.
    - ``name``: the front-end's name in the start-up line: ``"native"`` (default),
      ``"aiogram"`` or ``"ptb"``.
    """

    handler: UpdateHandler
    token: str | None = None
    api_url: str | None = None
    keys: KeyFunc | None = None
    allowed_updates: tuple[str, ...] | None = None
    startup: Callable[[], Awaitable[Any]] | None = None
    shutdown: Callable[[], Awaitable[Any]] | None = None
    name: str = "native"


ADAPTERS: Mapping[str, str] = {
    "aiogram": "tgrunner.frontends.aiogram.adapter:adapt",
    "telegram": "tgrunner.frontends.ptb.adapter:adapt",
}
"""The adapter for objects of each framework, by the framework's top-level package name; each
is ``module:function``, called as ``adapt(obj, **options)`` and returning a :class:`Frontend`."""


def detect(obj: Any, **options: Any) -> Frontend | None:
    """The front-end for ``obj``, or None when no front-end recognises it.

    The adapter is chosen from :data:`ADAPTERS` by the top-level package of ``obj``'s class
    (of its first item when ``obj`` is a tuple, such as a factory's ``(dispatcher, bot)``) and
    imported only then. ``options`` always carry ``token`` and ``api_url`` (None when not
    given): the adapter makes the framework's own bot talk to that server with that token when
    they are set.
    """
    first = obj[0] if isinstance(obj, tuple) and obj else obj
    package = (type(first).__module__ or "").partition(".")[0]
    target = ADAPTERS.get(package)
    if target is None:
        return None
    module, _, name = target.partition(":")
    adapt: Callable[..., Frontend] = getattr(importlib.import_module(module), name)
    return adapt(obj, **options)


# -- entry points ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollingCall:
    """A framework's polling call made by the user's entry point, as tgrunner runs it.

    - ``target``: what to run (the Dispatcher, the Application), with ``options`` for its
      adapter (aiogram: ``bot``, the Bots passed; ``data``, the workflow data keywords).
    - ``allowed_updates`` / ``drop_pending_updates`` / ``timeout`` (long-poll seconds): the
      polling options the call passed; None when it did not pass them.
    - ``call``: the call as messages name it, e.g. ``"dp.start_polling()"``.
    - ``ignored``: options the call passed that tgrunner has no use for.
    """

    target: Any
    call: str
    options: dict[str, Any] = field(default_factory=dict)
    allowed_updates: tuple[str, ...] | None = None
    drop_pending_updates: bool | None = None
    timeout: int | None = None
    ignored: tuple[str, ...] = ()


class Handoff(Protocol):
    """Where an entry point's polling calls go while :func:`intercepting` is active.

    The framework-side replacements call ``await serve_call(call)`` from async code (aiogram's
    ``start_polling``), ``run_call(call)`` from sync code that blocks (PTB's ``run_polling``),
    and ``refuse(message)`` for a call tgrunner cannot run (a webhook). Each returns once the
    bot stopped, or raises something the user's code does not catch (a ``BaseException``).
    """

    async def serve_call(self, call: PollingCall) -> None: ...

    def run_call(self, call: PollingCall) -> None: ...

    def refuse(self, message: str) -> NoReturn: ...


ENTRY_HOOKS: Mapping[str, str] = {
    "aiogram": "tgrunner.frontends.aiogram.entry:intercept",
    "telegram.ext": "tgrunner.frontends.ptb.entry:intercept",
}
"""Per framework, by the module that defines its polling calls (``aiogram``, PTB's
``telegram.ext``), ``module:function`` called as ``intercept(handoff)``: a context manager
during which that framework's polling (and webhook) calls go to ``handoff``."""

_active = threading.Lock()


@contextlib.contextmanager
def intercepting(handoff: Handoff) -> Iterator[None]:
    """For the block, route the polling calls of every framework of :data:`ENTRY_HOOKS` to
    ``handoff``: at once for those imported already, and as soon as it is imported for the
    others (so a module that starts its bot while it is imported is caught too). Nothing is
    imported here; the frameworks are patched back on exit.

    One block at a time per process: a second one raises RuntimeError.
    """
    if not _active.acquire(blocking=False):
        raise RuntimeError("tgrunner already runs an entry point in this process")
    try:
        with contextlib.ExitStack() as stack:

            def hook(name: str) -> None:
                module, _, attr = ENTRY_HOOKS[name].partition(":")
                intercept = getattr(importlib.import_module(module), attr)
                stack.enter_context(intercept(handoff))

            waiting = {name for name in ENTRY_HOOKS if name not in sys.modules}
            for name in ENTRY_HOOKS.keys() - waiting:
                hook(name)
            if waiting:
                finder = _AfterImport(waiting, hook)
                sys.meta_path.insert(0, finder)
                stack.callback(sys.meta_path.remove, finder)
            yield
    finally:
        _active.release()


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``then(name)`` once the module ``name`` (one of ``names``) has been executed."""

    def __init__(self, names: set[str], then: Callable[[str], None]) -> None:
        self.names = names
        self.then = then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is not None and spec.loader is not None:
                self.names.discard(fullname)
                spec.loader = _ThenLoader(spec.loader, lambda: self.then(fullname))
                return spec
        return None


class _ThenLoader(importlib.abc.Loader):
    """``loader``, calling ``then()`` after it executed the module; the module keeps
    ``loader`` as its own (``__loader__``, ``__spec__.loader``)."""

    def __init__(self, loader: importlib.abc.Loader, then: Callable[[], None]) -> None:
        self.loader = loader
        self.then = then

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.then()
