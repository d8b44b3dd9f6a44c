"""The python-telegram-bot 22 front-end: an ``Application`` runs unchanged on tgrunner.

::

    tgrunner run mybot:application          # or mybot:create, a factory returning one
    tgrunner run echobot:main               # main() calling application.run_polling(); .entry

    from tgrunner.frontends.ptb import run
    run(application)                        # instead of application.run_polling(); see .launch

tgrunner replaces PTB's ``Updater``; everything else is PTB's own:

- **Lifecycle**, as ``run_polling`` does it: ``initialize()``, ``post_init``, ``start()``
  (the JobQueue, the persistence loop, the ``update_queue`` fetcher for updates the bot puts
  there itself) before the first fetch; after the last update, ``stop()`` (running jobs and
  ``create_task`` tasks finish, persistence is updated), ``post_stop``, ``shutdown()``
  (persistence is flushed, the HTTP connections close) and ``post_shutdown``.
- **Updates** go through ``Application.process_update`` in tgrunner's scheduler, so handlers,
  groups, ``ConversationHandler`` and persistence work as under ``run_polling``. PTB's
  ``concurrent_updates`` limit is replaced by tgrunner's per-key order and concurrency limit.
  A custom ``BaseUpdateProcessor`` (anything but PTB's default) still wraps every update.
- **Order.** The default keys are the chat and the user
  (:func:`tgrunner.keys.chat_and_user_keys`), so conversation state (per chat, per user or
  both) never races. Handlers that PTB runs as tasks (``block=False``, or
  ``Defaults(block=False)``) are awaited before the update counts as finished, so they keep
  their chat's order and their update is not confirmed to Telegram before they end.
- **Errors** reach the application's error handlers first. When it has none, tgrunner's
  error hook gets them (the runtime's log by default), instead of PTB's "No error handlers are
  registered" log line; errors outside an update (jobs) are logged.
- **Requests.** By default the application's bot sends its calls through
  :class:`~tgrunner.frontends.ptb.request.TgrunnerRequest` (``request="tgrunner"``), which
  raises PTB's own exceptions; ``request="ptb"`` keeps PTB's ``HTTPXRequest``. A request object
  other than PTB's plain ``HTTPXRequest`` is kept: a subclass, another class, or an
  ``HTTPXRequest`` with a proxy (set, or in ``HTTPS_PROXY``/``ALL_PROXY``), socket options,
  HTTP/2 or extra httpx arguments. tgrunner's request sends the bot's calls through the
  runtime's flood control (``--flood``); PTB's own does not.
- **allowed_updates**: ``Update.ALL_TYPES`` unless tgrunner's settings name some
  (``TGRUNNER_ALLOWED_UPDATES``, or ``run(allowed_updates=...)``).

**Worker processes** (``tgrunner run --workers N``): every worker loads the Application and
runs its whole lifecycle (``post_init``, ``post_stop``, ``post_shutdown`` run in each). The
jobs set up before the application starts (at import, in ``post_init``) run in worker 0 only
(``worker_slot=0``), so a repeating job runs once, not N times; a job a handler adds runs in
the worker that handled the update, where the chat's state is. A ``PicklePersistence`` (one
file) with more than one worker is refused at start: N processes rewriting the same file would
corrupt it. :class:`tgrunner.state.bridges.ptb.TgrunnerPersistence` keeps the data in the
state store instead: it is accepted with workers, and written after each update, before the
update counts as finished (``writes_through``), so a crash loses none of it.

Limits: ``Application.stop_running()`` stops the event loop under PTB's runner and cannot stop
tgrunner (send SIGTERM, or call ``Runner.stop()``); ``run_polling``'s ``bootstrap_retries``,
``poll_interval`` and ``stop_signals`` have no counterpart (tgrunner retries with backoff and
handles SIGINT and SIGTERM).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from telegram import Bot as PTBBot
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ExtBot,
    PicklePersistence,
    SimpleUpdateProcessor,
)
from telegram.request import HTTPXRequest

import tgrunner.frontends.ptb.compat as compat
from tgrunner.errors import ConfigError
from tgrunner.flood.limiter import FloodControl
from tgrunner.frontends import Frontend
from tgrunner.frontends.ptb.request import TgrunnerRequest
from tgrunner.keys import chat_and_user_keys

if TYPE_CHECKING:
    from telegram.ext import CallbackContext

    from tgrunner.client.bot import Bot

__all__ = ["ALL_TYPES", "REQUEST_MODES", "PTBDriver", "adapt"]

log = logging.getLogger(__name__)

REQUEST_MODES = ("tgrunner", "ptb")
"""``request=`` choices: tgrunner's HTTP client (default) or PTB's own ``HTTPXRequest``."""

_AnyApplication = Application[Any, Any, Any, Any, Any, Any]

ALL_TYPES: tuple[str, ...] = tuple(str(kind) for kind in Update.ALL_TYPES)
"""Every update kind PTB knows (``Update.ALL_TYPES``): the default ``allowed_updates``."""


def _application(obj: Any, name: str) -> _AnyApplication:
    if isinstance(obj, Application):
        return obj
    where = name.partition(":")[0] if ":" in name else "mybot"
    if isinstance(obj, ApplicationBuilder):
        # A builder has no handlers yet: running what it builds would answer nothing.
        raise ConfigError(
            f"{name} is a python-telegram-bot ApplicationBuilder: call .build() on it, add the "
            "handlers to the Application it returns, and point tgrunner at that Application "
            f"(e.g. {where}:application)"
        )
    if isinstance(obj, PTBBot):
        raise ConfigError(
            f"{name} is a python-telegram-bot Bot: point tgrunner at the Application with the "
            f"handlers (e.g. {where}:application), or at the function that starts it "
            f"({where}:main)"
        )
    raise ConfigError(
        f"tgrunner runs a python-telegram-bot Application, not {type(obj).__name__} ({name}). "
        f"Point it at the Application ({where}:application), or at the function that starts "
        f"it ({where}:main) or builds it ({where}:create)."
    )


def _api_url_of(bot: Any) -> str | None:
    """The server of a PTB bot's ``base_url`` (``…/bot<token>``), None for other layouts."""
    suffix = f"/bot{bot.token}"
    base: str = bot.base_url
    return base[: -len(suffix)] if base.endswith(suffix) else None


class PTBDriver:
    """Drives one PTB ``Application`` for the runtime: its lifecycle hooks and the handler.

    Built by :func:`adapt`; ``token`` / ``api_url`` given here replace the bot's own (the bot
    then calls ``<api_url>/bot<token>/…`` and ``<api_url>/file/bot<token>/…``). ``run_jobs``
    (default True): keep the jobs set up before start (False in all worker processes but one:
    they are removed there, see :func:`.compat.drop_jobs`).
    """

    def __init__(
        self,
        app: _AnyApplication,
        *,
        token: str | None = None,
        api_url: str | None = None,
        request: str = "tgrunner",
        run_jobs: bool = True,
        flood: FloodControl | None = None,
    ) -> None:
        if request not in REQUEST_MODES:
            raise ConfigError(
                f"request={request!r} is not one of {', '.join(map(repr, REQUEST_MODES))}: "
                "'tgrunner' sends the bot's calls through tgrunner's HTTP client, 'ptb' keeps "
                "python-telegram-bot's own HTTPXRequest."
            )
        self.app = app
        self.request = request
        self.run_jobs = run_jobs
        self.flood = flood
        bot = app.bot
        own_api = _api_url_of(bot)
        self.token: str = token or bot.token
        self.api_url: str | None = api_url.rstrip("/") if api_url else own_api
        if self.api_url is None:
            raise ConfigError(
                f"The application's bot calls {bot.base_url!r}, which is not "
                "'<server>/bot<token>', so tgrunner cannot tell where to poll. Pass the server "
                "(--api-url), or build the bot with base_url='<server>/bot'."
            )
        if self.token != bot.token or self.api_url != own_api:
            compat.set_bot_endpoint(
                bot,
                self.token,
                f"{self.api_url}/bot{self.token}",
                f"{self.api_url}/file/bot{self.token}",
            )
        # Errors raised while an update is processed, by the id of its Update object; only used
        # when the application has no error handler of its own.
        self._errors: dict[int, list[Exception]] = {}
        self._fallback_installed = False

    # -- the handler --------------------------------------------------------------------------

    async def handle(self, data: dict[str, Any], bot: Bot) -> None:
        """Process one update (a dict as Telegram sent it) with the application.

        ``bot`` (tgrunner's client) is not used: handlers use the application's own bot.
        """
        app = self.app
        ptb_bot = app.bot
        update = Update.de_json(data, ptb_bot)
        if isinstance(ptb_bot, ExtBot) and ptb_bot.callback_data_cache is not None:
            ptb_bot.insert_callback_data(update)  # what ExtBot.get_updates does under PTB
        key = id(update)
        errors: list[Exception] = []
        self._errors[key] = errors
        try:
            processor = app.update_processor
            if type(processor) is SimpleUpdateProcessor:
                await app.process_update(update)
            else:
                await processor.process_update(update, app.process_update(update))
            await self._wait_non_blocking(update)
            if getattr(app.persistence, "writes_through", False):
                # A persistence that asks for it (tgrunner's) gets the update's data now, so
                # the update counts as finished only once its data is in the store.
                await app.update_persistence()
        finally:
            del self._errors[key]
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup(f"{len(errors)} handlers failed on {update.update_id}", errors)

    async def _wait_non_blocking(self, update: Update) -> None:
        """Await the tasks PTB spawned for this update's ``block=False`` handlers (found as
        :func:`.compat.spawned_for` says; none found: they run detached, as under PTB)."""
        tasks = compat.non_blocking_tasks(self.app)
        if not tasks:
            return
        mine = [t for t in tasks if compat.spawned_for(t, update)]
        if not mine:
            return
        try:
            await asyncio.wait(mine)
        except asyncio.CancelledError:
            # The update's time limit (or a fast stop) ends its handlers, spawned ones too.
            for task in mine:
                task.cancel()
            raise

    async def _fallback(self, update: object, context: CallbackContext[Any, Any, Any, Any]) -> None:
        """The error handler installed when the application has none of its own."""
        if len(self.app.error_handlers) > 1:
            return  # the bot registered its own error handlers since
        error = context.error
        if error is None:
            return
        errors = self._errors.get(id(update))
        if errors is not None:
            errors.append(error)  # raised again by handle(): tgrunner's error hook gets it
        elif context.job is not None:
            log.error("job %r failed", context.job.name, exc_info=error)
        else:
            log.error("python-telegram-bot task failed (%r)", update, exc_info=error)

    # -- lifecycle ----------------------------------------------------------------------------

    async def startup(self) -> None:
        """``initialize()``, ``post_init``, ``start()``; on failure, shut down as on exit."""
        app = self.app
        try:
            if self.request == "tgrunner":
                await self._install_request()
            await app.initialize()
            if app.post_init is not None:
                await app.post_init(app)
            if not self.run_jobs and (dropped := compat.drop_jobs(app)):
                log.info("%d job(s) set up at start run in worker process 0, not here", dropped)
            await app.start()
        except BaseException:
            await self.shutdown()
            raise
        if not app.error_handlers:
            app.add_error_handler(self._fallback, block=True)
            self._fallback_installed = True

    async def shutdown(self) -> None:
        """``stop()`` and ``post_stop`` (if started), ``shutdown()``, ``post_shutdown``."""
        app = self.app
        try:
            if app.running:
                await app.stop()
                if app.post_stop is not None:
                    await app.post_stop(app)
        finally:
            try:
                await app.shutdown()
                if app.post_shutdown is not None:
                    await app.post_shutdown(app)
            finally:
                if self._fallback_installed:
                    app.remove_error_handler(self._fallback)
                    self._fallback_installed = False

    async def _install_request(self) -> None:
        """Put a TgrunnerRequest where the bot has PTB's default HTTPXRequest."""
        bot = self.app.bot
        current = compat.bot_requests(bot)
        if current is None:
            log.warning(
                "keeping the bot's own requests: this PTB stores them where tgrunner "
                "does not look (Bot._request)"
            )
            return
        for given in current:
            if isinstance(given, TgrunnerRequest):
                given.flood = self.flood
        plain = [_is_plain_httpx(r) for r in current]
        if not any(plain):
            return
        ours = TgrunnerRequest(**compat.httpx_timeouts(current[1]), flood=self.flood)
        first, second = (ours if p else r for r, p in zip(current, plain, strict=True))
        compat.set_bot_requests(bot, (first, second))
        for old, p in zip(current, plain, strict=True):
            if p:
                await old.shutdown()


# HTTPXRequest's own client settings; anything more (a proxy, socket options, HTTP/2, extra
# httpx arguments) is a setup tgrunner's client does not have, so that request is kept.
_PLAIN_HTTPX = {"timeout", "proxy", "limits", "transport", "http1", "http2"}
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _is_plain_httpx(request: Any) -> bool:
    """Whether ``request`` is PTB's HTTPXRequest as the builder makes it by default."""
    if type(request) is not HTTPXRequest:
        return False
    kwargs = compat.httpx_client_kwargs(request)
    custom = (
        kwargs is None
        or set(kwargs) - _PLAIN_HTTPX
        or kwargs.get("proxy") is not None
        or kwargs.get("transport") is not None
        or request.http_version != "1.1"
        or any(os.environ.get(name) for name in _PROXY_VARIABLES)
    )
    if custom:
        log.info("keeping the bot's HTTPXRequest: it has a proxy or custom httpx settings")
    return not custom


def adapt(
    obj: Any,
    *,
    token: str | None = None,
    api_url: str | None = None,
    request: str = "tgrunner",
    name: str | None = None,
    workers: int = 1,
    worker_slot: int | None = None,
    flood: FloodControl | None = None,
    **_: Any,
) -> Frontend:
    """The :class:`~tgrunner.frontends.Frontend` for a PTB ``Application``.

    - ``token`` / ``api_url``: replace the bot's own when given; otherwise they are read from
      the bot (``api_url`` from its ``base_url``).
    - ``request``: ``"tgrunner"`` (default) sends the bot's calls through tgrunner's HTTP
      client, ``"ptb"`` keeps PTB's ``HTTPXRequest``.
    - ``name``: the target as the user named it, for messages.
    - ``workers``: how many worker processes run the bot (default 1); with more, a
      single-file persistence (``PicklePersistence``) is refused with a ConfigError.
    - ``worker_slot``: this worker process's slot (default None: no worker processes); the
      jobs set up before start run only in slot 0.
    - ``flood``: the process's flood control, for the bot's requests when they are
      tgrunner's (default None: none; PTB's own ``HTTPXRequest`` never has any).

    Options meant for other front-ends are ignored.
    """
    app = _application(obj, name or "the target")
    if workers > 1:
        _refuse_file_persistence(app, workers)
    run_jobs = worker_slot is None or worker_slot == 0
    driver = PTBDriver(
        app, token=token, api_url=api_url, request=request, run_jobs=run_jobs, flood=flood
    )
    return Frontend(
        handler=driver.handle,
        token=driver.token,
        api_url=driver.api_url,
        keys=chat_and_user_keys,
        allowed_updates=ALL_TYPES,
        startup=driver.startup,
        shutdown=driver.shutdown,
        name="ptb",
    )


def _refuse_file_persistence(app: _AnyApplication, workers: int) -> None:
    persistence = app.persistence
    if getattr(persistence, "writes_through", False):  # tgrunner's: safe across processes
        return
    path = getattr(persistence, "filepath", None)
    if isinstance(persistence, PicklePersistence) or path is not None:
        raise ConfigError(
            f"The application's {type(persistence).__name__} keeps its data in one file "
            f"({path}), which {workers} worker processes would each rewrite and corrupt: use "
            "tgrunner.state.bridges.ptb.TgrunnerPersistence (the state store, safe with "
            "worker processes), run it with --workers 1, or drop the persistence"
        )
