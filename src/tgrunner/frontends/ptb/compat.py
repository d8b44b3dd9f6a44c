"""Every use of python-telegram-bot's private internals by tgrunner, one small function each.

PTB 22 has no public way to do these things. Each function names what it relies on and what
happens when a later PTB no longer has it; ``tests/frontends/ptb/test_compat.py`` runs each one
against the installed PTB and fails, naming the internal, when it moved.

What PTB offers publicly is used directly elsewhere (``Bot.token``, ``base_url``,
``Bot.request``, ``HTTPXRequest.http_version`` and ``read_timeout``, ``BaseRequest.post``,
``Application.process_update``, ``update_processor``, the error handlers, …). The default
marker of request timeouts is recognised by the class of the public
``BaseRequest.DEFAULT_NONE``, not by an import from ``telegram._utils``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from telegram.ext import Application as _Application
from telegram.ext import Updater as _Updater
from telegram.request import BaseRequest

if TYPE_CHECKING:
    from telegram import Bot, Update
    from telegram.ext import Application, ConversationHandler

__all__ = [
    "DEFAULT_VALUE",
    "bot_requests",
    "conversation_states",
    "drop_jobs",
    "fresh_persistence_event",
    "httpx_client_kwargs",
    "httpx_timeouts",
    "non_blocking_tasks",
    "polling_calls",
    "set_bot_endpoint",
    "set_bot_requests",
    "spawned_for",
]

DEFAULT_VALUE: type = type(BaseRequest.DEFAULT_NONE)
"""The class of PTB's "argument not given" markers, such as ``BaseRequest.DEFAULT_NONE``, which
``BaseRequest.post`` passes to ``do_request`` for every timeout the caller left out. Public:
derived from a documented class attribute."""


def set_bot_endpoint(bot: Bot, token: str, base_url: str, base_file_url: str) -> None:
    """Point a built (frozen) PTB bot at another token and server.

    Relies on ``Bot._token``, ``Bot._base_url`` and ``Bot._base_file_url``, the slots behind
    the ``token``, ``base_url`` and ``base_file_url`` properties; they are written past the
    bot's freeze with ``object.__setattr__``. Should they move, RuntimeError says so instead
    of polling one server while the handlers call another.
    """
    for slot, value in (
        ("_token", token),
        ("_base_url", base_url),
        ("_base_file_url", base_file_url),
    ):
        object.__setattr__(bot, slot, value)
    if (bot.token, bot.base_url, bot.base_file_url) != (token, base_url, base_file_url):
        raise RuntimeError(
            "This python-telegram-bot keeps the bot's token and URLs elsewhere than "
            "Bot._token / _base_url / _base_file_url, so tgrunner cannot change them; build "
            "the Application with the token and base_url it should use."
        )


def bot_requests(bot: Bot) -> tuple[BaseRequest, BaseRequest] | None:
    """``(get_updates_request, request)``: the two request objects of a built bot.

    Relies on ``Bot._request``, the pair PTB's ``Bot.__init__`` stores (``Bot.request`` is its
    second item). None when missing: the caller then keeps PTB's own requests.
    """
    pair = getattr(bot, "_request", None)
    if isinstance(pair, tuple) and len(pair) == 2 and pair[1] is bot.request:
        return pair
    return None


def set_bot_requests(bot: Bot, requests: tuple[BaseRequest, BaseRequest]) -> None:
    """Replace the two request objects of a built bot (see :func:`bot_requests`).

    Relies on ``Bot._request``, written past the bot's freeze; RuntimeError when ``bot.request``
    does not then return the new one.
    """
    object.__setattr__(bot, "_request", requests)
    if bot.request is not requests[1]:
        raise RuntimeError("Setting Bot._request did not change Bot.request in this PTB.")


def non_blocking_tasks(app: Application[Any, Any, Any, Any, Any, Any]) -> set[asyncio.Task[Any]]:
    """The tasks ``app.create_task`` started that are still running (``block=False`` handlers
    among them).

    Relies on the name-mangled ``Application.__create_task_tasks`` set. When missing, an empty
    set: ``block=False`` handlers then run detached, as under PTB's own runner (their update
    may be confirmed before they end).
    """
    tasks: set[asyncio.Task[Any]] | None = getattr(app, "_Application__create_task_tasks", None)
    return tasks if isinstance(tasks, set) else set()


def spawned_for(task: asyncio.Task[Any], update: Update) -> bool:
    """Whether ``task`` is a running ``block=False`` handler of ``update``.

    Relies on PTB's task names: ``Application:<bot id>:process_update_non_blocking:<handler>``
    from ``Application.process_update`` and ``ConversationHandler:<update id>:handle_update:…``
    from ``ConversationHandler``; and on the task's coroutine (PTB's
    ``Application.__create_task_callback``) having its ``update`` argument as a frame local.
    When they change, False: the handler runs detached as under PTB's runner. The bot's own
    ``create_task`` work is never matched: it may outlive its update by design.
    """
    if task.done():
        return False
    name = task.get_name()
    if name.startswith("ConversationHandler:"):
        return name.startswith(f"ConversationHandler:{update.update_id}:handle_update:")
    if ":process_update_non_blocking:" not in name:
        return False
    frame = getattr(task.get_coro(), "cr_frame", None)
    return frame is not None and frame.f_locals.get("update") is update


def httpx_client_kwargs(request: Any) -> dict[str, Any] | None:
    """The keyword arguments an ``HTTPXRequest`` builds its ``httpx.AsyncClient`` with (its
    proxy, transport, limits, HTTP version and extra ``httpx_kwargs``).

    Relies on ``HTTPXRequest._client_kwargs``. None when missing: the caller then treats the
    request as customised and keeps it.
    """
    kwargs = getattr(request, "_client_kwargs", None)
    return kwargs if isinstance(kwargs, dict) else None


def httpx_timeouts(request: Any) -> dict[str, Any]:
    """The timeouts an ``HTTPXRequest`` was built with, as ``TgrunnerRequest`` arguments.

    Relies on ``HTTPXRequest._client`` (its ``httpx.AsyncClient``, whose ``timeout`` holds the
    four) and ``HTTPXRequest._media_write_timeout``. When missing, only the public
    ``read_timeout`` is kept and the rest take ``TgrunnerRequest``'s defaults (PTB's own).
    """
    timeout = getattr(getattr(request, "_client", None), "timeout", None)
    if timeout is None:
        return {"read_timeout": request.read_timeout}
    return {
        "read_timeout": timeout.read,
        "write_timeout": timeout.write,
        "connect_timeout": timeout.connect,
        "pool_timeout": timeout.pool,
        "media_write_timeout": getattr(request, "_media_write_timeout", 20.0),
    }


def conversation_states(handler: ConversationHandler[Any]) -> MutableMapping[Any, object]:
    """The state of every conversation a ``ConversationHandler`` is in, by conversation key, so
    tests can end them all between runs.

    Relies on ``ConversationHandler._conversations``, the dict its ``__init__`` creates (and
    ``_initialize_persistence`` refills from a persistence). Should it move, RuntimeError says
    so instead of letting a conversation leak from one test into the next.
    """
    states = getattr(handler, "_conversations", None)
    if not isinstance(states, MutableMapping):
        raise RuntimeError(
            "This python-telegram-bot keeps conversation states elsewhere than "
            "ConversationHandler._conversations, so tgrunner cannot reset them; pass "
            "reset_state=False, or build a new Application for each test."
        )
    return states


def fresh_persistence_event(app: Application[Any, Any, Any, Any, Any, Any]) -> bool:
    """Give a stopped application a new event for its persistence loop, so it can start again
    on another event loop (an ``asyncio.Event`` stays bound to the loop that first waited on
    it); return whether it was replaced.

    Relies on the name-mangled ``Application.__update_persistence_event``, created once in
    ``__init__`` and awaited by the persistence loop ``start()`` launches. When missing, False:
    an application with a persistence then fails to stop on a second event loop, as under
    PTB's own runner.
    """
    name = "_Application__update_persistence_event"
    if app.running or not isinstance(getattr(app, name, None), asyncio.Event):
        return False
    setattr(app, name, asyncio.Event())
    return True


def drop_jobs(app: Application[Any, Any, Any, Any, Any, Any]) -> int:
    """Remove every job of ``app``'s JobQueue before the application starts (the jobs its
    module and ``post_init`` set up), so that they run in one worker process only; return how
    many were removed. Jobs the handlers add later run as usual.

    Uses PTB's public ``JobQueue.jobs()`` and ``Job.schedule_removal()``, and relies on them
    seeing jobs added while the scheduler has not started (APScheduler keeps them aside until
    it starts). Should that change, RuntimeError says so instead of running the jobs in every
    worker.
    """
    with warnings.catch_warnings():  # PTB warns when there is none (not installed)
        warnings.simplefilter("ignore")
        queue = app.job_queue
    if queue is None:
        return 0
    jobs = queue.jobs()
    for job in jobs:
        job.schedule_removal()
    if queue.jobs():
        raise RuntimeError(
            "This python-telegram-bot keeps jobs that Job.schedule_removal() removed before "
            "the JobQueue started, so tgrunner cannot keep them to one worker process; run "
            "with --workers 1, or start the jobs from a handler"
        )
    return len(jobs)


# -- entry points ------------------------------------------------------------------------------

_REFUSED = (
    (_Application, "run_webhook", "application.run_webhook()"),
    (_Updater, "start_polling", "application.updater.start_polling()"),
    (_Updater, "start_webhook", "application.updater.start_webhook()"),
)


@contextlib.contextmanager
def polling_calls(
    run_polling: Callable[[Any, dict[str, Any]], None],
    refused: Callable[[str], None],
) -> Iterator[None]:
    """For the block, ``Application.run_polling`` calls ``run_polling(application, options)``
    instead, with ``options`` the arguments the caller passed by name (bound to PTB's
    signature, so a wrong call raises PTB's TypeError); ``Application.run_webhook``,
    ``Updater.start_polling`` and ``Updater.start_webhook`` call ``refused(call)``, ``call``
    naming the method as the user wrote it (``"application.run_webhook()"``).

    Relies on these being plain methods looked up on their classes at call time (so the
    class attribute is what a call finds), and on ``run_polling`` keeping its signature; the
    tests check both.
    """
    original = _Application.run_polling
    saved = [(cls, name, cls.__dict__[name]) for cls, name, _ in _REFUSED]

    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(original).bind(self, *args, **kwargs)
        options = dict(bound.arguments)
        options.pop("self", None)
        run_polling(self, options)

    def refuse(call: str) -> Callable[..., Any]:
        def refusing(*args: Any, **kwargs: Any) -> Any:
            refused(call)

        return refusing

    _Application.run_polling = run  # type: ignore[method-assign]
    for cls, name, call in _REFUSED:
        setattr(cls, name, refuse(call))
    try:
        yield
    finally:
        _Application.run_polling = original  # type: ignore[method-assign]
        for cls, name, method in saved:
            setattr(cls, name, method)
