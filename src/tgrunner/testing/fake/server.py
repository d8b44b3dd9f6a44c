"""FakeTelegram: a real Bot API server on loopback, for tests, demos and benchmarks.

Three ways to run it:

- ``async with FakeTelegram() as tg:`` in async code (it serves on the running loop);
- ``with FakeTelegram().in_thread() as tg:`` (or ``start_in_thread()`` / ``stop_thread()``)
  for sync code: the server gets its own loop in a daemon thread, and every call made from
  another thread hops onto that loop (see :mod:`tgrunner.testing.fake.world`); the ``*_sync``
  twins of the await helpers block the calling thread;
- ``tgrunner fake-telegram --port 8081`` from the command line (:mod:`.cli`).

Requests take a synchronous fast path unless they must wait (long polling, pause, latency):
the HTTP server gets a finished ``Response`` back without creating a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from ssl import SSLContext
from typing import Any

import orjson

from tgrunner._http.server import HTTPServer, Request, Response
from tgrunner.testing.botapi import Method
from tgrunner.testing.fake.base import ApiError
from tgrunner.testing.fake.control import CONTROL_PATH, ControlAPI, is_control_path
from tgrunner.testing.fake.faults import Decision, Faults, FloodLimits, Injector
from tgrunner.testing.fake.generate import Generator
from tgrunner.testing.fake.methods import Methods
from tgrunner.testing.fake.params import FILE, parse_body, parse_query, parse_target
from tgrunner.testing.fake.recording import RecordedRequest, Recording
from tgrunner.testing.fake.webhook import WebhookDelivery, WebhookRetry, WebhookTimings
from tgrunner.testing.fake.world import BotState, State

__all__ = ["FakeTelegram", "RecordedRequest"]

log = logging.getLogger(__name__)

_UNAUTHORIZED = Response(401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}')
_NOT_FOUND = Response(404, b'{"ok":false,"error_code":404,"description":"Not Found"}')
_INTERNAL = b'{"ok":false,"error_code":500,"description":"Internal Server Error"}'
_ROUTE_CACHE_MAX = 4096


class FakeTelegram(Recording):
    """A Bot API server on loopback that behaves like Telegram (see the package docs).

    - ``host`` (default ``127.0.0.1``), ``port`` (default 0: a free port).
    - ``token`` (default: generated, in Telegram's format) of the bot it serves.
    - ``seed`` (default 0): ids, tokens and random values repeat from run to run.
    - ``flood`` / ``faults`` (default None: off): limits and fault injection; both may be
      reassigned at runtime.
    - ``record`` (default True): keep every request in :attr:`requests`; an int keeps only the
      last that many (a ring, for long benchmarks); False (or 0) keeps none. Unless True, the
      message history is bounded too (1000 messages per chat).
    - ``max_body`` (default 50 MiB): larger requests get 413.
    - ``webhook_retry`` (default :class:`WebhookRetry()`): webhook delivery backoff.
    - ``webhook_timings`` (default None: not recorded): a :class:`WebhookTimings` that
      receives the duration of every webhook POST.
    - ``ssl`` (default None: plain HTTP): serve HTTPS with this ``ssl.SSLContext``.
    - ``control`` (default True): serve the JSON control API under ``/control`` on the same
      port (:mod:`tgrunner.testing.fake.control`), at :attr:`control_url`; False answers 404.
    - ``control_secret`` (default None: none needed): the value every control request must
      carry in the ``X-Control-Secret`` header.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        seed: int = 0,
        flood: FloodLimits | None = None,
        faults: Faults | None = None,
        record: bool | int = True,
        max_body: int = 50 * 1024 * 1024,
        webhook_retry: WebhookRetry | None = None,
        webhook_timings: WebhookTimings | None = None,
        ssl: SSLContext | None = None,
        control: bool = True,
        control_secret: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.max_body = max_body
        self.webhook_retry = webhook_retry or WebhookRetry()
        self.webhook_timings = webhook_timings
        self.answer_methods: list[str] = []
        """The methods run from webhook answers (not requests of the bot's own), in order."""
        self.ssl = ssl
        # A bounded record means a long run: bound the message history too.
        bounded = record is not True
        self.state = State(token=token, seed=seed, history_limit=1000 if bounded else None)
        self.generator = Generator(self.state.spec, seed=seed, bot_user=self.state.bot_user)
        self.methods = Methods(self.state, self.generator, on_webhook=self._on_webhook)
        self._flood = flood
        self._faults = faults
        self._injector: Injector | None = None
        self._rebuild_injector()
        self.requests: list[RecordedRequest] | deque[RecordedRequest]
        self._record = bool(record)
        if isinstance(record, bool) or record <= 0:
            self.requests = []
        else:
            self.requests = deque(maxlen=int(record))
        self._routes: dict[str, tuple[BotState, Method] | Response] = {}
        self._deliveries: dict[str, WebhookDelivery] = {}
        self._server: HTTPServer | None = None
        self._paused = False
        self._held = 0
        self._recorded = 0
        self._resumed: asyncio.Event | None = None
        self._population: Any = None
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None
        self._closed = False
        # Background work (webhook clients closing, webhook-reply calls) awaited by close().
        self._tasks: set[asyncio.Future[Any]] = set()
        self.control = ControlAPI(self, secret=control_secret) if control else None

    # -- identity --------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """The bot's token: ``<bot id>:<35 characters>``."""
        return self.state.token

    @property
    def bot_user(self) -> dict[str, Any]:
        """The bot's User object, as ``getMe`` returns it."""
        return self.state.bot_user

    @property
    def api_url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:PORT`` (``https://`` with ``ssl``; valid
        once started)."""
        return f"{'https' if self.ssl is not None else 'http'}://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        """The control API's URL, ``<api_url>/control`` (valid once started)."""
        return self.api_url + CONTROL_PATH

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve on the running loop. The port is known when this returns."""
        loop = asyncio.get_running_loop()
        self.state.bind(loop)
        self._resumed = asyncio.Event()
        if not self._paused:
            self._resumed.set()
        server = HTTPServer(
            self._handle, host=self.host, port=self.port, max_body=self.max_body, ssl=self.ssl
        )
        await server.start()
        self._server = server
        self.port = server.port
        self._closed = False
        log.debug("FakeTelegram serving at %s", self.api_url)

    async def close(self) -> None:
        """Stop serving: end webhook delivery and long polls, close connections. Idempotent."""
        if self._closed or self._server is None:
            return
        self._closed = True
        for delivery in list(self._deliveries.values()):
            await delivery.aclose()
        self._deliveries.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for bot in self.state.bots.values():
            poll = bot.long_poll
            bot.long_poll = None
            if poll is not None and not poll.done():
                poll.set_result(None)
        if self._resumed is not None:
            self._resumed.set()
        server, self._server = self._server, None
        await server.close()
        self.state.bind(None)

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeTelegram:
        """Serve from a new daemon thread with its own loop; return once it is listening."""
        if self._thread is not None:
            raise RuntimeError("FakeTelegram is already running in a thread")
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            try:
                self._thread_stop = asyncio.Event()
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            started.set()
            try:
                await self._thread_stop.wait()
            finally:
                await self.close()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="FakeTelegram", daemon=True
        )
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        """Stop the server started by :meth:`start_in_thread` and join its thread. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop = self.state.loop
        stop = self._thread_stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[FakeTelegram]:
        """``with FakeTelegram().in_thread() as tg:``: serve from a thread for the block."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result (directly when already on it)."""
        loop = self.state.loop
        if loop is None or not loop.is_running() or self.state._thread == threading.get_ident():
            return fn()

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    # -- limits, faults, pause -------------------------------------------------------------

    @property
    def flood(self) -> FloodLimits | None:
        """Flood limits in force (None: off). Assign to change them at runtime."""
        return self._flood

    @flood.setter
    def flood(self, value: FloodLimits | None) -> None:
        self._flood = value
        self._rebuild_injector()

    @property
    def faults(self) -> Faults | None:
        """Injected faults in force (None: off). Assign to change them at runtime."""
        return self._faults

    @faults.setter
    def faults(self, value: Faults | None) -> None:
        self._faults = value
        self._rebuild_injector()

    def _rebuild_injector(self) -> None:
        if self._flood is None and self._faults is None:
            self._injector = None
        else:
            self._injector = Injector(self._flood, self._faults)

    def pause(self) -> None:
        """Hold every request that arrives from now on until :meth:`resume`."""
        self._on_loop(self._set_paused)

    def resume(self) -> None:
        """Answer the held requests and serve normally again."""
        self._on_loop(self._set_resumed)

    def _set_paused(self) -> None:
        self._paused = True
        if self._resumed is not None:
            self._resumed.clear()

    def _set_resumed(self) -> None:
        self._paused = False
        if self._resumed is not None:
            self._resumed.set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def held(self) -> int:
        """Requests waiting for :meth:`resume` right now."""
        return self._held

    # -- simulated users -------------------------------------------------------------------

    @property
    def population(self) -> Any:
        """The simulated users (:class:`tgrunner.testing.fake.users.Population`)."""
        if self._population is None:
            from tgrunner.testing.fake.users import Population

            self._population = Population(self.state, seed=self.seed)
        return self._population

    def user(self, *args: Any, **kwargs: Any) -> Any:
        """A simulated user with a private chat with the bot (see ``Population.user``)."""
        return self.population.user(*args, **kwargs)

    def group(self, *args: Any, **kwargs: Any) -> Any:
        """A simulated basic group (see ``Population.group``)."""
        return self.population.group(*args, **kwargs)

    def supergroup(self, *args: Any, **kwargs: Any) -> Any:
        """A simulated supergroup (see ``Population.supergroup``)."""
        return self.population.supergroup(*args, **kwargs)

    def forum(self, *args: Any, **kwargs: Any) -> Any:
        """A simulated forum supergroup with topics (see ``Population.forum``)."""
        return self.population.forum(*args, **kwargs)

    def channel(self, *args: Any, **kwargs: Any) -> Any:
        """A simulated channel (see ``Population.channel``)."""
        return self.population.channel(*args, **kwargs)

    def restart_update_ids(self, at: int) -> None:
        """Restart update ids at ``at`` (lower), as Telegram does after a quiet week."""
        self.state.restart_update_ids(at)

    @property
    def pending_updates(self) -> int:
        """Updates of the bot not yet confirmed by ``getUpdates`` or accepted by the webhook."""
        return self.state.pending_count()

    # -- request handling ------------------------------------------------------------------

    def _route(self, path: str) -> tuple[BotState, Method] | Response:
        route = self._routes.get(path)
        if route is not None:
            return route
        target = parse_target(path)
        if target is None:
            return _NOT_FOUND
        kind, token, name = target
        bot = self.state.bot(token)
        if bot is None:
            return _UNAUTHORIZED
        if kind == FILE:
            return self._download(name)
        method = self.state.spec.method(name)
        if method is None:
            # Not cached: an unknown path is no hot path, and caching it would let a client
            # grow the cache without bound.
            return _NOT_FOUND
        if len(self._routes) >= _ROUTE_CACHE_MAX:
            self._routes.clear()
        route = self._routes[path] = (bot, method)
        return route

    def _download(self, file_path: str) -> Response:
        stored = self.state.files_by_path.get(file_path)
        if stored is None:
            return _NOT_FOUND
        data = stored.data
        if data is None:
            # Files the fake made up have deterministic filler content of their size.
            data = bytes(stored.file_size)
        return Response(200, data, content_type="application/octet-stream")

    def _handle(self, request: Request) -> Response | Awaitable[Response]:
        """The HTTP handler: a finished Response on the fast path, else an awaitable."""
        if self._paused:
            return self._when_resumed(request)
        path = request.path
        if isinstance(path, bytes):
            path = path.decode("utf-8", "replace")
        route = self._route(path)
        if route.__class__ is Response:
            if route is _NOT_FOUND and self.control is not None and is_control_path(path):
                return self.control.handle(request)
            return route
        bot, method = route  # type: ignore[misc]
        injector = self._injector
        if injector is not None:
            decision = injector.decide(method.name)
            if decision.latency > 0:
                return self._after_latency(request, bot, method, decision)
            if decision.reset:
                return Response(abort=True)
            if decision.error is not None:
                return self._error_response(bot, method.name, {}, decision.error)
            if decision.answer is not None:
                return self._raw_answer(bot, method.name, decision.answer)
        return self._invoke(request, bot, method)

    async def _when_resumed(self, request: Request) -> Response:
        assert self._resumed is not None  # set by start(), before any request
        self._held += 1
        self.state.changed()
        try:
            await self._resumed.wait()
        finally:
            self._held -= 1
        response = self._handle(request)
        if inspect.isawaitable(response):
            response = await response
        return response

    async def _after_latency(
        self, request: Request, bot: BotState, method: Method, decision: Decision
    ) -> Response:
        await asyncio.sleep(decision.latency)
        if decision.reset:
            return Response(abort=True)
        if decision.error is not None:
            return self._error_response(bot, method.name, {}, decision.error)
        if decision.answer is not None:
            return self._raw_answer(bot, method.name, decision.answer)
        response = self._invoke(request, bot, method)
        if inspect.isawaitable(response):
            response = await response
        return response

    def _invoke(
        self, request: Request, bot: BotState, method: Method
    ) -> Response | Awaitable[Response]:
        name = method.name
        raw: dict[str, Any] = {}
        try:
            if request.query:
                parse_query(request.query, raw)
            if request.body:
                raw = parse_body(request.headers.get("content-type", ""), request.body, raw)
            return self._execute(bot, method, raw)
        except ApiError as exc:
            return self._error_response(bot, name, raw, exc)

    def _execute(
        self, bot: BotState, method: Method, raw: dict[str, Any]
    ) -> Response | Awaitable[Response]:
        name = method.name
        params = raw
        try:
            params = self.methods.prepare(method, raw)
            injector = self._injector
            if injector is not None and injector.by_chat and "chat_id" in params:
                chat_id = params["chat_id"]
                chat = self.state.chats.get(chat_id) if isinstance(chat_id, int) else None
                limited = injector.check_flood(name, chat_id, chat.get("type") if chat else None)
                if limited is not None:
                    raise limited
            if name in self.methods.asynchronous:
                return self._execute_async(bot, name, params, raw)
            result = self.methods.call(bot, name, params, raw)
        except ApiError as exc:
            return self._error_response(bot, name, params, exc)
        except Exception:
            log.exception("FakeTelegram failed on %s", name)
            self._record_call(name, params, bot.token, 500, orjson.loads(_INTERNAL))
            return Response(500, _INTERNAL)
        self._record_call(name, params, bot.token, 200, result)
        return Response(200, orjson.dumps({"ok": True, "result": result}))

    async def _execute_async(
        self, bot: BotState, name: str, params: dict[str, Any], raw: dict[str, Any]
    ) -> Response:
        try:
            result = await self.methods.asynchronous[name](bot, params, raw)
        except ApiError as exc:
            return self._error_response(bot, name, params, exc)
        except Exception:
            log.exception("FakeTelegram failed on %s", name)
            self._record_call(name, params, bot.token, 500, orjson.loads(_INTERNAL))
            return Response(500, _INTERNAL)
        self._record_call(name, params, bot.token, 200, result)
        return Response(200, orjson.dumps({"ok": True, "result": result}))

    def _error_response(
        self, bot: BotState, name: str, params: dict[str, Any], exc: ApiError
    ) -> Response:
        envelope = exc.envelope()
        self._record_call(name, params, bot.token, exc.code, envelope)
        headers: tuple[tuple[str, str], ...] = ()
        retry_after = exc.parameters.get("retry_after")
        if retry_after is not None:
            headers = (("Retry-After", str(retry_after)),)
        return Response(exc.code, orjson.dumps(envelope), headers=headers)

    def _raw_answer(self, bot: BotState, name: str, body: bytes) -> Response:
        """Answer with injected bytes (``Faults.answer``), recorded with the body as given."""
        self._record_call(name, {}, bot.token, 200, body)
        return Response(200, body)

    # -- webhooks --------------------------------------------------------------------------

    def _on_webhook(self, bot: BotState) -> None:
        delivery = self._deliveries.get(bot.token)
        if bot.webhook is None:
            if delivery is not None:
                del self._deliveries[bot.token]
                delivery.stop()
                # Connections close in the background; close() awaits the rest.
                task = asyncio.get_running_loop().create_task(delivery.aclose())
                self._background(task)
            return
        if delivery is None:
            delivery = WebhookDelivery(
                self.state,
                bot,
                self._execute_reply,
                retry=self.webhook_retry,
                timings=self.webhook_timings,
            )
            self._deliveries[bot.token] = delivery
        delivery.start()

    def _background(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _execute_reply(self, bot: BotState, name: str, params: dict[str, Any]) -> None:
        """Run a method carried in a webhook answer, recorded like any request."""
        method = self.state.spec.method(name)
        if method is None:
            return
        self.answer_methods.append(method.name)
        response = self._execute(bot, method, dict(params))
        if inspect.isawaitable(response):
            self._background(asyncio.ensure_future(response))
