"""``/metrics``, ``/healthz`` and ``/readyz`` on one port, answered even while the bot's loop is
blocked.

::

    server = ObserveServer(metrics, listen="127.0.0.1:9090", ready=runner_checks)
    await server.start()       # on the bot's event loop
    ...
    await server.close()

Why the HTTP server runs in a thread of its own, with its own event loop: ``/healthz`` must say
"unhealthy" when the bot's event loop is blocked (a handler calling ``time.sleep``, a CPU-bound
loop), and a server on that loop cannot answer at all then, so a probe would only time out, and
be answered 200 once the block ends. Here the bot's loop stamps a heartbeat every
``beat_every`` seconds; ``/healthz``, answered from the server's thread, is 503 once the stamp
is older than ``stall_after``. One aiohttp server on one port (not a second stdlib server for
``/healthz`` alone) keeps one address to configure and to probe.

``/metrics`` and ``/readyz`` read objects that belong to the bot's loop (metrics, lanes, the
journal), so they run there: the server thread hands them to that loop and waits up to
``loop_timeout`` seconds, then answers 503 itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from aiohttp import web

from tgrunner.errors import ConfigError
from tgrunner.observability.metrics import Metrics

__all__ = ["ObserveServer", "ReadyChecks", "parse_listen"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ReadyChecks = Callable[[], Mapping[str, bool] | Awaitable[Mapping[str, bool]]]
"""``ready()``: named checks (``{"source": True, "journal": True, ...}``), or an awaitable of
them; called on the bot's event loop for each ``/readyz``."""

_EXAMPLE = "host:port, e.g. 127.0.0.1:9090, [::1]:9090 or :9090 for every interface"


def parse_listen(listen: str) -> tuple[str, int]:
    """``(host, port)`` from ``"host:port"``; ``"[v6]:port"``; ``":port"`` is every interface
    (``0.0.0.0``). Port 0 picks a free port. ConfigError (one line) for anything else."""
    text = listen.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            sep = ""  # an IPv6 address needs brackets
    if not sep or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        raise ConfigError(f"the metrics address {listen!r} is not {_EXAMPLE}")
    return host or "0.0.0.0", int(port)


class ObserveServer:
    """The observability endpoints of one process (the supervisor's, with worker processes).

    - ``metrics``: what ``GET /metrics`` exposes (``metrics.registry``, in the text format, or
      OpenMetrics when the scraper asks for it).
    - ``listen``: ``"host:port"``, default ``"127.0.0.1:9090"`` (see :func:`parse_listen`).
    - ``ready``: the checks of ``GET /readyz`` (see :data:`ReadyChecks`), default none (always
      ready). 200 with JSON ``{"ready": true, "checks": {...}}`` when every check is true, else
      503 with ``"failing"``: the names of the false ones (``"ready"`` when ``ready()`` raised,
      ``"event_loop"`` when the loop did not answer).
    - ``stall_after``: seconds without a heartbeat after which ``GET /healthz`` is 503, default
      1.5; ``beat_every``: the heartbeat's period, default 0.5.
    - ``loop_timeout``: seconds ``/metrics`` and ``/readyz`` wait for the bot's loop, default 2.

    ``start()`` and ``close()`` run on the bot's event loop; ``close()`` is safe twice. A bad
    ``listen`` or a port in use raises ConfigError.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        listen: str = "127.0.0.1:9090",
        ready: ReadyChecks | None = None,
        stall_after: float = 1.5,
        beat_every: float = 0.5,
        loop_timeout: float = 2.0,
    ) -> None:
        self._metrics = metrics
        self._listen = listen
        self._host, self._port = parse_listen(listen)
        self._ready = ready
        self._stall_after = stall_after
        self._beat_every = beat_every
        self._loop_timeout = loop_timeout
        self._bot_loop: asyncio.AbstractEventLoop | None = None
        self._beat_handle: asyncio.TimerHandle | None = None
        self._last_beat = 0.0
        self._thread: threading.Thread | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def port(self) -> int:
        """The port listened on (the one picked, once started with port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the server (a bracketed host for IPv6)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        """Start listening and the heartbeat. ConfigError when the address cannot be used."""
        if self._thread is not None or self._closed:
            return
        self._bot_loop = asyncio.get_running_loop()
        self._beat()
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="tgrunner-observe", daemon=True
        )
        self._thread.start()
        try:
            self._port = await asyncio.wrap_future(started)
        except BaseException:
            await self.close()
            raise
        log.debug("metrics and health checks on %s (/metrics, /healthz, /readyz)", self.url)

    async def close(self) -> None:
        """Stop listening and the heartbeat; safe to call twice, or before ``start()``."""
        self._closed = True
        if self._beat_handle is not None:
            self._beat_handle.cancel()
            self._beat_handle = None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._server_loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(_resolve, stop)
            except RuntimeError:
                pass  # the server's loop has ended already (it failed to listen)
        await asyncio.to_thread(thread.join)

    async def __aenter__(self) -> ObserveServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the bot's loop ------------------------------------------------------------------

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        assert self._bot_loop is not None
        self._beat_handle = self._bot_loop.call_later(self._beat_every, self._beat)

    # -- the server's thread -------------------------------------------------------------

    def _serve(self, started: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        self._server_loop = loop
        try:
            loop.run_until_complete(self._run(started))
        except BaseException as exc:  # never lose the reason start() is waiting for
            if not started.done():
                started.set_exception(exc)
            else:
                log.exception("the metrics server stopped")
        finally:
            loop.close()

    async def _run(self, started: concurrent.futures.Future[int]) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._on_metrics)
        app.router.add_get("/healthz", self._on_healthz)
        app.router.add_get("/readyz", self._on_readyz)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._loop_timeout + 1)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(self._listen_error(exc)) from None
            self._stop = asyncio.get_running_loop().create_future()
            started.set_result(int(runner.addresses[0][1]))
            await self._stop
        finally:
            await runner.cleanup()

    def _listen_error(self, exc: OSError) -> str:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"cannot serve metrics on {self._listen}: port {self._port} is in use; "
                "choose another port (port 0 picks a free one)"
            )
        return f"cannot serve metrics on {self._listen}: {exc.strerror or exc}"

    async def _on_healthz(self, request: web.Request) -> web.Response:
        age = time.monotonic() - self._last_beat
        if age > self._stall_after:
            body = {"ok": False, "error": f"the event loop has not run for {age:.1f} s"}
            return web.json_response(body, status=503)
        return web.json_response({"ok": True, "heartbeat_age": round(age, 3)})

    async def _on_metrics(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        try:
            body, content_type = await self._on_bot_loop(self._render(accept))
        except _LoopUnavailable as exc:
            return web.Response(status=503, text=f"{exc}\n")
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _render(self, accept: str) -> tuple[bytes, str]:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        return encoder(self._metrics.registry), content_type

    async def _on_readyz(self, request: web.Request) -> web.Response:
        try:
            checks, error = await self._on_bot_loop(self._checks())
        except _LoopUnavailable as exc:
            stalled = {"ready": False, "failing": ["event_loop"], "error": str(exc)}
            return web.json_response(stalled, status=503)
        failing = [name for name, ok in checks.items() if not ok]
        if error is not None:
            failing.append("ready")
        if failing:
            body: dict[str, Any] = {"ready": False, "failing": failing, "checks": checks}
            if error is not None:
                body["error"] = error
            return web.json_response(body, status=503)
        return web.json_response({"ready": True, "checks": checks})

    async def _checks(self) -> tuple[dict[str, bool], str | None]:
        if self._ready is None:
            return {}, None
        try:
            result = self._ready()
            if inspect.isawaitable(result):
                result = await result
            return {str(name): bool(ok) for name, ok in result.items()}, None
        except Exception as exc:
            log.warning("the readiness checks raised", exc_info=True)
            return {}, f"{type(exc).__name__}: {exc}"

    async def _on_bot_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the bot's loop; _LoopUnavailable when it is gone or too slow."""
        loop = self._bot_loop
        if loop is None or loop.is_closed():
            coro.close()
            raise _LoopUnavailable("the event loop has stopped")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:
            coro.close()
            raise _LoopUnavailable("the event loop has stopped") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._loop_timeout)
        except TimeoutError:
            future.cancel()
            raise _LoopUnavailable(
                f"the event loop did not answer within {self._loop_timeout:g} s"
            ) from None


class _LoopUnavailable(Exception):
    """The bot's event loop could not run a request's work in time."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
