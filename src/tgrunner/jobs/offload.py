"""``await offload(fn, *args)``: CPU-bound work in a process pool, off the event loop.

::

    from tgrunner.jobs import offload

    def render(text: str) -> bytes:           # at module level: pool processes import it
        ...                                   # seconds of CPU

    @router.message()
    async def draw(ctx: Context) -> None:
        png = await offload(render, ctx.text, timeout=30)
        await ctx.reply_photo(png)

A handler is a coroutine: CPU work done in it stops every other chat for as long as it runs.
``offload()`` sends ``fn(*args, **kwargs)`` to a pool process and waits for it without
blocking the loop, so other updates flow meanwhile. It is a plain coroutine, so it works in
native, aiogram and PTB handlers alike.

- **Result.** ``fn``'s return value, pickled back. An exception ``fn`` raises is raised here
  as it is (same type), with the pool process's traceback as a note
  (``exc.__notes__``); one that cannot cross (it does not pickle, or not unpickle) is an
  :class:`~tgrunner.errors.OffloadError` naming its type and message.
- **timeout** (seconds, default None: none). On expiry the pool process is SIGKILLed and
  replaced, and :class:`~tgrunner.errors.OffloadTimeout` (a ``TimeoutError``) is raised. It
  counts from the moment a pool process takes the call, not while the call queues (the
  handler's own time limit covers both).
- **A pool process that dies** while it runs ``fn`` (``os._exit``, a crash in an extension,
  the OOM killer) fails that call with :class:`~tgrunner.errors.OffloadCrashed` and is
  replaced; other calls go on.
- **Queue.** More calls than processes wait in one FIFO queue, unbounded here: every entry is
  one awaiting handler, and the runtime's concurrency limit bounds those.
- **Cancellation.** A cancelled call (the handler's time limit, a fast stop) that still
  queues is dropped; one that runs has its pool process SIGKILLed and replaced. Letting it
  finish would keep a process busy for nothing, for ever if ``fn`` never returns.
- **What can be sent.** ``fn`` goes by module and name: a function defined at module level
  (or a method of a module-level class, a builtin; a ``functools.partial`` of one is sent
  pickled). Lambdas, functions defined inside another function, async functions and
  functions of a script run as ``python bot.py`` are refused, and so are arguments that do
  not pickle: :class:`~tgrunner.errors.OffloadRefused`, before anything is sent. Arguments
  are pickled on the event loop: pass a file's path, not its megabytes.
- **The pool.** Started at the first call: ``processes`` pool processes (default: one per
  core this process may use; in a ``--workers N`` worker process, its share of them, since
  each worker process has a pool of its own). :func:`configure_offload` or the
  ``TGRUNNER_OFFLOAD_PROCESSES`` variable (which wins) sets it. Each pool process is a fresh
  interpreter given this process's ``sys.path``; the modules ``fn`` needs are imported there
  at its first call. How it works: :mod:`tgrunner.jobs._pool`.
- **Shutdown.** :func:`shutdown_offload` ends the pool (the runtime calls it when the bot
  stops; a later call starts a new pool). Pool processes never outlive this process, even
  when it is SIGKILLed: on Linux the kernel kills them with it.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import os
import pickle
import sys
import threading
import types
from typing import Any

from tgrunner.errors import ConfigError, OffloadRefused
from tgrunner.jobs._calls import Call
from tgrunner.jobs._pool import Pool

__all__ = ["configure_offload", "offload", "offload_pids", "shutdown_offload"]

ENV = "TGRUNNER_OFFLOAD_PROCESSES"
"""The variable that sets the pool's size (it wins over :func:`configure_offload`)."""

_lock = threading.Lock()
_pool: Pool | None = None
_processes: int | None = None  # configure_offload's
_sharers = 1  # processes of this machine's bot that each have a pool (worker processes)
_at_exit = False


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on this platform
        return os.cpu_count() or 1


def pool_size() -> int:
    """The size the pool has (or would have, started now): ``TGRUNNER_OFFLOAD_PROCESSES``,
    else :func:`configure_offload`'s, else this process's share of the cores it may use."""
    raw = os.environ.get(ENV)
    if raw is not None and raw.strip():
        try:
            value = int(raw.strip())
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{ENV}={raw!r}: must be a whole number of at least 1")
        return value
    if _processes is not None:
        return _processes
    return max(1, _cores() // _sharers)


def configure_offload(processes: int | None = None) -> None:
    """Set the pool's size: ``processes`` pool processes (None: the default, one per core,
    shared among worker processes). Takes effect when the pool starts: call it before the
    first :func:`offload` (at import, say) or after :func:`shutdown_offload`; ConfigError
    while a pool of another size runs. ``TGRUNNER_OFFLOAD_PROCESSES`` wins over it."""
    global _processes
    if processes is not None and (isinstance(processes, bool) or processes < 1):
        raise ConfigError(f"offload processes must be at least 1, not {processes!r}")
    with _lock:
        pool = _pool if _pool is not None and _pool.pid == os.getpid() else None
        if pool is not None and processes is not None and pool.size != processes:
            raise ConfigError(
                f"the offload pool already runs {pool.size} processes: call "
                "configure_offload() before the first offload(), or after "
                "await shutdown_offload()"
            )
        _processes = processes


def share_cores(processes: int) -> None:
    """This process is one of ``processes`` worker processes of one bot, each with its own
    pool: the default size becomes its share of the cores. Called by the worker process."""
    global _sharers
    _sharers = max(1, processes)


def offload_pids() -> list[int]:
    """The PIDs of the pool's live processes (none before the first call)."""
    pool = _pool
    return [] if pool is None or pool.pid != os.getpid() else pool.pids()


async def shutdown_offload(timeout: float = 10.0) -> None:
    """End the pool: queued calls fail, running ones are killed (their callers get an
    OffloadError), every pool process is ended and reaped, within ``timeout`` seconds
    (default 10). Safe to call twice, or with no pool; a later :func:`offload` starts a new
    one. Blocking work runs in a thread, off the event loop."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        await asyncio.to_thread(pool.close, timeout)


def _close_at_exit() -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        pool.close(2.0)


def _running_pool() -> Pool:
    global _pool, _at_exit
    with _lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = Pool(pool_size())
            if not _at_exit:  # a script that never calls shutdown_offload()
                atexit.register(_close_at_exit)
                _at_exit = True
        return _pool


async def offload(fn: Any, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in a pool process and return its result (see the module
    docstring for errors, ``timeout`` in seconds, cancellation and what can be sent).

    ``timeout`` is offload's own: pass a keyword of that name to ``fn`` through
    ``functools.partial``.
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be above 0 seconds (or None), not {timeout!r}")
    name, payload = prepare(fn, args, kwargs)
    loop = asyncio.get_running_loop()
    call = Call(name, payload, timeout, loop, loop.create_future())
    pool = _running_pool()
    pool.submit(call)
    try:
        return await call.future
    except asyncio.CancelledError:
        pool.cancel(call)
        raise


# -- what can be sent ----------------------------------------------------------------------------

_MOVE = "define it with def at the top level of a module, and pass that function"


def prepare(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, bytes]:
    """``(name, payload)``: ``fn``'s name for messages and the CALL payload; OffloadRefused
    when ``fn`` or an argument cannot be sent."""
    name, ref, fn_blob = _callable(fn)
    try:
        args_blob = pickle.dumps((args, kwargs), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise OffloadRefused(_bad_argument(name, args, kwargs, exc)) from None
    return name, pickle.dumps((name, ref, fn_blob, args_blob), pickle.HIGHEST_PROTOCOL)


def _callable(fn: Any) -> tuple[str, tuple[str, str] | None, bytes | None]:
    """``(name, (module, qualname) or None, pickled fn or None)``."""
    if not callable(fn):
        raise OffloadRefused(f"offload() needs a function, not a {type(fn).__name__}")
    target = fn.func if isinstance(fn, functools.partial) else fn
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise OffloadRefused(
            f"{_label(target)} is an async function: offload() runs plain functions in "
            "another process; await it directly, or offload the CPU-bound part as a def"
        )
    if _by_reference(fn):
        module, qualname = _reference(fn)
        return f"{module}.{qualname}", (module, qualname), None
    try:
        blob = pickle.dumps(fn, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise OffloadRefused(
            f"{_label(fn)} cannot be sent to a pool process: pickling it failed "
            f"({type(exc).__name__}: {exc}). Pass a module-level function, or a "
            "functools.partial of one with picklable arguments"
        ) from None
    return _label(fn), None, blob


def _by_reference(fn: Any) -> bool:
    """Whether ``fn`` is sent as its module and name: a function, a class, or a builtin
    function of a module (not a builtin bound to an object, like ``"abc".upper``)."""
    if isinstance(fn, types.BuiltinFunctionType):
        return fn.__self__ is None or isinstance(fn.__self__, types.ModuleType)
    return isinstance(fn, types.FunctionType | type)


def _label(fn: Any) -> str:
    if _by_reference(fn):
        return f"{fn.__module__}.{fn.__qualname__}"
    if isinstance(fn, functools.partial):
        return f"functools.partial({_label(fn.func)})"
    owner = getattr(fn, "__self__", None)
    if owner is not None and hasattr(fn, "__name__"):  # a bound method
        return f"{type(owner).__module__}.{type(owner).__qualname__}.{fn.__name__}"
    return f"a {type(fn).__module__}.{type(fn).__qualname__}"


def _reference(fn: Any) -> tuple[str, str]:
    """The (module, qualname) a pool process imports ``fn`` by; OffloadRefused if none."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    shown = f"{module}.{qualname}"
    if fn.__name__ == "<lambda>":
        raise OffloadRefused(
            f"{shown} is a lambda: pool processes import the function by its module and "
            f"name, and a lambda has none; {_MOVE}"
        )
    if "<locals>" in qualname:
        raise OffloadRefused(
            f"{shown} is defined inside another function, so pool processes cannot import "
            f"it; move it to module level ({_MOVE})"
        )
    if module is None:
        raise OffloadRefused(f"{shown} has no module to import it from; {_MOVE}")
    found = sys.modules.get(module)
    if module == "__main__":
        spec = getattr(found, "__spec__", None)
        if spec is None or not spec.name or spec.name == "__main__":
            raise OffloadRefused(
                f"{qualname} is defined in the script being run (__main__): pool processes "
                "would have to run that script again to find it. Move it into a module of "
                "its own and import it from there"
            )
        module = spec.name  # run with python -m: importable under its real name
    obj: Any = found
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not fn:
        raise OffloadRefused(
            f"{shown} is not the function offload() was given (the name is bound to another "
            "object, e.g. a decorator's wrapper): pass the object the module's name holds, or "
            "give the wrapper functools.wraps"
        )
    return module, qualname


def _bad_argument(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], exc: Exception) -> str:
    """Which argument of ``name`` does not pickle, and what to pass instead."""
    where = "an argument"
    for label, value in [*((f"argument {i + 1}", v) for i, v in enumerate(args)),
                         *((f"keyword argument {k!r}", v) for k, v in kwargs.items())]:  # fmt: skip
        try:
            pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except Exception as err:
            where = f"{label} (a {type(value).__module__}.{type(value).__qualname__})"
            exc = err
            break
    return (
        f"{where} of {name} cannot be sent to a pool process: pickling it failed "
        f"({type(exc).__name__}: {exc}). Pass plain data (numbers, str, bytes, lists, dicts, "
        "instances of module-level classes), not live objects (a bot, a connection, a lock)"
    )
