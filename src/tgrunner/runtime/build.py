"""Turn whatever the user's target names into something to run: a :class:`~.runner.Runner`,
or for an entry point (``main``) an :class:`~.entry.EntryPoint`.

What a target may be is in :mod:`tgrunner.runtime.targets` (the rules of ``tgrunner run``):
a bot object (a tgrunner ``Router``, an aiogram ``Dispatcher``, a PTB ``Application``), an
``async fn(update, bot)``, a function taking no arguments (an entry point, or a factory), or
with ``factory=True`` any callable returning a bot object. :func:`tgrunner.frontends.detect`
finds the front-end of framework objects.

- :func:`build_launcher` is what ``tgrunner run`` runs: it follows every rule.
- :func:`build_runner` returns a Runner, so it cannot run an entry point: a function taking
  no arguments is called as a factory there, and one that starts polling is refused.

**Jobs** (:mod:`tgrunner.runtime.jobs`): every Runner built here opens the job queue as it
starts, and with ``settings.jobs.workers`` starts job worker processes beside the bot.
**State** (:mod:`tgrunner.runtime.state`): every Runner built here opens the bot's state
store as it starts (``--state``, default SQLite in the data dir) and closes it as it stops;
with worker processes, each worker opens it too.

**Worker processes** (``settings.workers.workers`` above 1): the Runner gets a
:class:`~tgrunner.executors.processes.ProcessExecutor` whose workers load the bot from the
import string again, each on its own. This process loads it too, only to learn what the
front-end needs (its keys, allowed updates, token and server): its handlers, startup and
shutdown hooks never run here, and building a front-end opens no connection. A target given
as an object (not an import string) cannot be loaded by a worker: ConfigError. An entry point
(``main``) is called here and in each worker: here its polling call gives the polling options,
and in each worker the Dispatcher or Application it starts is that worker's bot (see
:mod:`tgrunner.executors.processes.worker`); its code around the call runs in every process.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from tgrunner.client.bot import DEFAULT_API_URL, token_bot_id
from tgrunner.errors import ConfigError
from tgrunner.executors.processes import ProcessExecutor, share_of
from tgrunner.flood.limiter import FloodControl
from tgrunner.frontends import Frontend, PollingCall, detect
from tgrunner.frontends.native.router import Router
from tgrunner.intake.options import data_dir
from tgrunner.runtime.broadcasts import BotBroadcasts
from tgrunner.runtime.entry import EntryPoint, RefusePolling, import_guarded
from tgrunner.runtime.flood import BUCKET_FILE, open_flood, share_buckets
from tgrunner.runtime.hooks import Hook, closing
from tgrunner.runtime.jobs import BotJobs
from tgrunner.runtime.jobs import attach as attach_jobs
from tgrunner.runtime.runner import Runner
from tgrunner.runtime.state import BotState
from tgrunner.runtime.state import attach as attach_state
from tgrunner.runtime.targets import check_handler, refusal, shape_of
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions

__all__ = ["build_launcher", "build_runner", "frontend_for", "load_frontend"]

_NOT_RUNNABLE = (
    "Point it at a tgrunner Router or an 'async def handler(update, bot)', an aiogram "
    "Dispatcher, a python-telegram-bot Application, or a function that starts or returns one "
    "of them (main; a factory)."
)


def frontend_for(obj: Any, **options: Any) -> Frontend:
    """The :class:`Frontend` that drives ``obj``; ConfigError (with a hint) when nothing can.

    ``options`` (``token``, ``api_url``, ``name`` for messages, front-end switches, ``flood``:
    the process's :class:`~tgrunner.flood.limiter.FloodControl` for the framework's session)
    go to the framework's adapter.
    """
    name = options.get("name") or _name_of(obj)
    if isinstance(obj, Router):
        return Frontend(handler=obj, keys=obj.keys)
    if inspect.iscoroutinefunction(obj):
        check_handler(obj, name)
        return Frontend(handler=obj)
    problem = refusal(obj, name)
    if problem is not None:
        raise ConfigError(problem)
    found = detect(obj, **options)
    if found is not None:
        return found
    raise ConfigError(
        f"tgrunner cannot run {name}, a {type(obj).__module__}.{type(obj).__name__}. "
        + _NOT_RUNNABLE
    )


def build_runner(
    target: str | Any,
    *,
    token: str | None = None,
    api_url: str | None = None,
    settings: Settings | None = None,
    factory: bool = False,
    **options: Any,
) -> Runner:
    """Load ``target`` (an import string or the object itself) and wrap it in a Runner.

    - ``token`` and ``api_url`` given here win over those of the framework's own bot object;
      ``api_url`` defaults to the framework's, else Telegram's.
    - ``settings`` defaults to ``Settings.from_env()``.
    - ``factory`` (default False): call ``target`` (any callable; awaited when it returns an
      awaitable) and run what it returns. A function taking no arguments is called so even
      without it; one that starts polling itself is refused (see :func:`build_launcher`).
    - ``options`` go to the front-end (for example ``session="aiogram"`` to keep aiogram's own
      HTTP session).
    """
    settings = settings or Settings.from_env()
    obj, name, module, shape = _resolve(target, factory)
    if shape == "call":
        obj = _factory_result(RefusePolling(name).call(obj), name)
    spec = _Spec(target, factory)
    return _runner(obj, name, token, api_url, settings, options, None, module, spec)


def load_frontend(
    target: str,
    *,
    token: str | None = None,
    api_url: str | None = None,
    factory: bool = False,
    **options: Any,
) -> Frontend:
    """The :class:`Frontend` of the bot an import string names, by the rules of
    :func:`build_runner` (a function taking no arguments is called as a factory; one that
    starts polling itself is refused). For a process that runs handlers only, such as a
    worker process: no Runner is built."""
    obj, name, module, shape = _resolve(target, factory)
    if shape == "call":
        obj = _factory_result(RefusePolling(name).call(obj), name)
    elif module is not None and inspect.iscoroutinefunction(obj):
        check_handler(obj, name, module)
    return frontend_for(obj, token=token, api_url=api_url, name=name, **options)


def build_launcher(
    target: str | Any,
    *,
    token: str | None = None,
    api_url: str | None = None,
    settings: Settings | None = None,
    factory: bool = False,
    prepare: Callable[[Runner], None] | None = None,
    **options: Any,
) -> Runner | EntryPoint:
    """What ``tgrunner run TARGET`` runs: a Runner, or an :class:`EntryPoint` for a function
    taking no arguments (without ``factory``). Both have ``serve()``, ``run()`` and ``stop()``.

    Arguments as for :func:`build_runner`. The entry point is called only by ``serve()`` or
    ``run()``; the Dispatcher or Application it starts is run with ``token``, ``api_url`` and
    ``settings`` from here, plus the polling options of its call where ``settings`` leave
    them at their defaults. ``prepare(runner)`` (default: nothing) is called on each Runner
    once it is built, before it serves: for an entry point, when its polling call is reached.
    """
    settings = settings or Settings.from_env()
    obj, name, module, shape = _resolve(target, factory)
    spec = _Spec(target, factory)
    ready = prepare or _as_is
    if shape != "call" or factory:
        if shape == "call":
            obj = _factory_result(RefusePolling(name).call(obj), name)
        runner = _runner(obj, name, token, api_url, settings, options, None, module, spec)
        ready(runner)
        return runner
    spec.entry = True

    def build(found: Any, call: PollingCall | None) -> Runner:
        if call is None:
            found = _factory_result(found, name)
        runner = _runner(found, name, token, api_url, settings, options, call, None, spec)
        ready(runner)
        return runner

    return EntryPoint(obj, name, build=build)


# -- internals ---------------------------------------------------------------------------------


def _as_is(runner: Runner) -> None:
    """The default ``prepare``: nothing to add."""


class _Spec:
    """How the target was given, for worker processes to load it again."""

    def __init__(self, target: Any, factory: bool) -> None:
        self.target = target if isinstance(target, str) else None
        self.factory = factory
        self.entry = False  # an entry point: each worker calls it, and serves what it starts


def _name_of(obj: Any) -> str:
    qualname = getattr(obj, "__qualname__", None)
    module = getattr(obj, "__module__", None)
    if inspect.isfunction(obj) and qualname and module:
        return f"{module}:{qualname}"
    return f"the {type(obj).__name__}"


def _resolve(target: str | Any, factory: bool) -> tuple[Any, str, Any, str]:
    """``(obj, name, module, shape)``: shape ``"call"`` when ``obj`` is to be called."""
    if isinstance(target, str):
        found = import_guarded(target)
        obj, name, module = found.obj, target, found.module
    else:
        obj, name, module = target, _name_of(target), None
    if factory:
        if not callable(obj) or _needs_arguments(obj):
            raise ConfigError(
                f"--factory: {name} is a {type(obj).__name__} that cannot be called without "
                "arguments, so it is no factory; drop --factory to run it as it is"
            )
        return obj, name, module, "call"
    return obj, name, module, shape_of(obj, name, module)


def _needs_arguments(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call tell
        return False
    return any(
        p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params
    )


def _factory_result(obj: Any, name: str) -> Any:
    if obj is None:
        raise ConfigError(f"{name} returned None: a factory must return the bot. " + _NOT_RUNNABLE)
    if shape_of(obj, f"what {name} returned", None) == "call":
        raise ConfigError(
            f"{name} returned a function taking no arguments; a factory must return the bot "
            "itself. " + _NOT_RUNNABLE
        )
    return obj


def _with_call(settings: Settings, call: PollingCall) -> Settings:
    """``settings`` plus the polling options of the entry point's call, where ``settings``
    leave them at their defaults (a flag or variable given to tgrunner wins over the code)."""
    polling = settings.polling
    default = PollingOptions()
    changes: dict[str, Any] = {}
    if call.allowed_updates is not None and polling.allowed_updates is None:
        changes["allowed_updates"] = call.allowed_updates
    if call.drop_pending_updates is not None and polling.drop_pending_updates is False:
        changes["drop_pending_updates"] = call.drop_pending_updates
    if call.timeout is not None and polling.timeout == default.timeout:
        changes["timeout"] = call.timeout
    return replace(settings, polling=replace(polling, **changes)) if changes else settings


def _runner(
    obj: Any,
    name: str,
    token: str | None,
    api_url: str | None,
    settings: Settings,
    options: dict[str, Any],
    call: PollingCall | None,
    module: Any,
    spec: _Spec,
) -> Runner:
    if call is not None:
        settings = _with_call(settings, call)
        options = {**options, **call.options}
    elif module is not None and inspect.iscoroutinefunction(obj):
        check_handler(obj, name, module)  # a hint naming the module's own Router
    workers = settings.workers.workers
    # One flood control for the Bot and the framework's own session: a 429 either sees
    # pauses the chat for both.
    flood = open_flood(settings.flood)
    fe = frontend_for(
        obj, token=token, api_url=api_url, name=name, workers=workers, flood=flood, **options
    )
    if fe.keys is not None and settings.keys is Settings().keys:
        settings = replace(settings, keys=fe.keys)
    if fe.allowed_updates is not None and settings.polling.allowed_updates is None:
        settings = replace(
            settings, polling=replace(settings.polling, allowed_updates=fe.allowed_updates)
        )
    token = token or fe.token
    api_url = api_url or fe.api_url or DEFAULT_API_URL
    if workers == 1 and (bot_id := token_bot_id(token)) is not None:
        share_buckets(flood, settings.flood, bot_id=bot_id)  # a --flood-store
    jobs = BotJobs(settings)
    jobs.token, jobs.api_url = token or "", api_url
    state = BotState(settings, token)
    broadcasts = BotBroadcasts(settings, token)
    executor = None
    if workers > 1:  # each worker shares the buckets; this process sends no chat's calls
        executor = _process_executor(spec, token, api_url, settings, options)
        executor.bind(
            state=state.for_workers(), broadcasts=broadcasts.path(), before_start=state.check
        )
        if token:
            executor.bind(jobs=jobs.for_workers())
    runner = Runner(
        fe.handler,
        token=token,
        api_url=api_url,
        settings=settings,
        # With worker processes the front-end's hooks run in each worker, not here; the job
        # queue and the state store open in every process, and the job workers start from
        # this one (the store opens first and closes last).
        # Broadcasts resume where the handlers run: here, or in each worker process.
        startup=state.startup(jobs.startup(None if executor else broadcasts.startup(fe.startup))),
        shutdown=_closing_flood(
            flood,
            state.shutdown(jobs.shutdown(None if executor else broadcasts.shutdown(fe.shutdown))),
        ),
        executor=executor,
        frontend=fe.name,
        flood=flood,
    )
    broadcasts.bot = runner.bot
    attach_jobs(runner, jobs)
    attach_state(runner, state)
    return runner


def _process_executor(
    spec: _Spec, token: str | None, api_url: str, settings: Settings, options: dict[str, Any]
) -> ProcessExecutor:
    if spec.target is None:
        raise ConfigError(
            "Worker processes load the bot from its import string; pass 'module:attr' (for "
            'example tgrunner.run("mybot:dp", workers=4)) instead of the object itself'
        )
    workers = settings.workers
    bot_id = token_bot_id(token)
    bucket_file = None
    if bot_id is not None and settings.flood.enabled and settings.flood.store is None:
        bucket_file = str((data_dir(settings.intake) / str(bot_id) / BUCKET_FILE).resolve())
    return ProcessExecutor(
        spec.target,
        token=token or "",
        api_url=api_url,
        share=share_of(settings.scheduler.concurrency, workers.workers),
        options=workers,
        keys=settings.keys,
        client=settings.client,
        flood=settings.flood,
        flood_file=bucket_file,
        load_options={"entry": True} if spec.entry else {"factory": spec.factory},
        frontend_options={"workers": workers.workers, **_json_only(options)},
    )


def _closing_flood(flood: FloodControl | None, inner: Hook) -> Hook:
    """The shutdown hook: ``inner``, then close the flood control's shared buckets."""
    return inner if flood is None else closing(flood.close, inner)


def _json_only(options: dict[str, Any]) -> dict[str, Any]:
    """The front-end options a worker process can be given (objects stay here)."""
    found = {}
    for key, value in options.items():
        try:
            orjson.dumps(value)
        except TypeError:
            continue
        found[key] = value
    return found
