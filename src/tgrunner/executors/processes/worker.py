"""A worker process: ``python -m tgrunner.executors.processes.worker IN_FD OUT_FD``.

Started by the supervisor (:mod:`.process`), never by hand. Its life:

1. Read ``INIT`` (the configuration: the bot's import string, token, server, client and
   flood options, its share of the concurrency, the supervisor's ``sys.path``) from
   ``IN_FD``, and build its own flood control.
2. Load the bot as ``tgrunner run`` does (``runtime.build.load_frontend``, with the
   front-end option ``worker_slot``: its slot, so that PTB's JobQueue runs in slot 0 only),
   create its own :class:`~tgrunner.client.bot.Bot`, tell a native router its username, open
   the job queue INIT names (so ``task.enqueue`` works in handlers) and the state store it
   names (``ctx.chat_data``, the bridges), and run the front-end's
   startup hook (aiogram's, PTB's ``post_init``). Then send ``READY``. If any of it fails,
   send ``FATAL`` with the error line (and, after a NUL, the traceback of the user's code
   when that raised) and exit 2.
3. Run each ``RUN`` update as a task, at most ``share`` at once (the rest wait in order), and
   answer ``DONE`` for each: success, the error (line and traceback), or cancelled. ``CANCEL``
   cancels the update's handler (the supervisor's time limit ran out).
4. Send ``HEARTBEAT`` from its own event loop (a timer, not a thread), so a blocked loop is
   seen as a hang.
5. When INIT has ``"metrics": true``, count its Bot's API calls in a
   :class:`~tgrunner.observability.Metrics` of its own and send its snapshot (``METRICS``)
   every :data:`METRICS_EVERY` seconds and at exit, for the supervisor's aggregator.
6. On ``STOP``: take nothing new, let what runs finish, run the shutdown hook, exit 0. If the
   supervisor is gone (EOF on ``IN_FD``), cancel everything and exit 1 at once. Either way
   the handlers' :func:`~tgrunner.jobs.offload` pool is shut down last; each worker has its
   own, of its share of the cores.

An entry point (``quick:main``, which starts its bot itself) is called as ``tgrunner run``
calls it (:class:`~tgrunner.runtime.entry.EntryPoint`): when it reaches its polling call, the
Dispatcher or Application it starts, with the Bot and workflow data it passes, is this
worker's bot, served inside that call (steps 2 to 5); then the entry point goes on, and its
cleanup runs, as under the framework.

SIGINT is ignored: Ctrl+C reaches the whole process group, and stopping is the supervisor's
decision (it sends ``STOP``). SIGTERM keeps its default action (exit at once), which is how the
supervisor ends a hung worker.

This module is an entry point, like the CLI: it sits at the top of the import graph (it uses
:mod:`tgrunner.runtime.build`), and nothing in the library imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from tgrunner.answers import ANSWERS
from tgrunner.client import calls
from tgrunner.client.bot import DEFAULT_API_URL, Bot
from tgrunner.errors import ConfigError, UserCodeError
from tgrunner.executors.processes.wire import (
    ANSWER,
    CANCEL,
    CANCELLED,
    DONE,
    FAILED,
    FATAL,
    HEADER,
    HEARTBEAT,
    INIT,
    METRICS,
    READY,
    RUN,
    STOP,
    FrameReader,
    FrameWriter,
    encode,
    read_frames,
)
from tgrunner.flood.limiter import FloodControl
from tgrunner.flood.options import FloodOptions
from tgrunner.frontends import Frontend, PollingCall
from tgrunner.jobs.offload import share_cores, shutdown_offload
from tgrunner.runtime.broadcasts import close_worker_broadcasts, open_worker_broadcasts
from tgrunner.runtime.build import frontend_for, load_frontend
from tgrunner.runtime.entry import EntryPoint, import_guarded
from tgrunner.runtime.flood import open_flood, share_buckets
from tgrunner.runtime.jobs import open_worker_queue
from tgrunner.runtime.state import open_worker_store

__all__ = ["Worker", "main"]

log = logging.getLogger("tgrunner.executors.processes.worker")

_EXIT_FLUSH = 5.0  # seconds the last frames may take to reach the supervisor at exit

METRICS_EVERY = 1.0
"""Seconds between two metrics snapshots of a worker (when metrics are on)."""


class Worker:
    """The event-loop side of a worker process; ``serve()`` returns its exit code."""

    def __init__(
        self,
        init: dict[str, Any],
        in_fd: int,
        out_fd: int,
        *,
        load: Callable[[FloodControl | None], Frontend] | None = None,
    ) -> None:
        self.init = init
        self._load_frontend = load or self._from_target
        # One per worker, for its Bot and the framework's session.
        self._flood_options = FloodOptions.from_json(init.get("flood") or {})
        self.flood = open_flood(self._flood_options)
        self.share: int = init["share"]
        self._in_fd = in_fd
        self._out_fd = out_fd
        self._reader = FrameReader()
        self._writer: FrameWriter | None = None
        self._running: dict[int, asyncio.Future[Any]] = {}
        self._waiting: dict[int, bytes] = {}  # over the share, in arrival order
        self._handler: Callable[..., Any] | None = None
        self._bot: Bot | None = None
        self._stopping = False
        self._end: asyncio.Future[int] | None = None
        self._beat: asyncio.TimerHandle | None = None
        self._metrics: Any = None  # a Metrics when INIT turns metrics on
        self._answers: dict[int, int] | None = None  # token -> update id, with answers on
        self._snapshots: asyncio.TimerHandle | None = None
        self._queue: Any = None  # the job queue, when INIT names one
        self._store: Any = None  # the state store, when INIT names one
        self._broadcasts: Any = None  # the outbox and broadcaster, when INIT names one

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._end = loop.create_future()
        os.set_blocking(self._in_fd, False)
        os.set_blocking(self._out_fd, False)
        self._writer = writer = FrameWriter(loop, self._out_fd, on_broken=self._supervisor_gone)
        self._heartbeat()
        try:
            frontend = await self._load()
        except Exception as exc:
            log.debug("start-up failed", exc_info=exc)
            writer.send(FATAL, 0, _fatal(exc))
            await self._close_bot()
            writer.flush_blocking(_EXIT_FLUSH)
            return 2
        loop.add_reader(self._in_fd, self._readable)
        writer.send(READY, 0, orjson.dumps({"pid": os.getpid()}))
        code = await self._end
        loop.remove_reader(self._in_fd)
        if code == 0 and frontend.shutdown is not None:
            try:
                await frontend.shutdown()
            except Exception:
                log.exception("the bot's shutdown hook failed")
                code = 1
        await self._close_bot()
        await shutdown_offload()
        if self._beat is not None:
            self._beat.cancel()
        if self._snapshots is not None:
            self._snapshots.cancel()
            self._snapshot(again=False)  # the last one, with the shutdown hook's calls
        writer.flush_blocking(_EXIT_FLUSH)
        return code

    def _from_target(self, flood: FloodControl | None) -> Frontend:
        init = self.init
        return load_frontend(
            init["target"],
            token=init["token"],
            api_url=init["api_url"],
            **init["load_options"],
            **init["frontend_options"],
            worker_slot=init["slot"],
            flood=flood,
        )

    async def _load(self) -> Frontend:
        init = self.init
        frontend = self._load_frontend(self.flood)
        token = init["token"] or frontend.token
        if not token:
            raise ConfigError("No bot token: the supervisor gave none and the bot has none.")
        client = init["client"]
        self._bot = bot = Bot(
            token,
            api_url=init["api_url"] or frontend.api_url or DEFAULT_API_URL,
            pool_size=self.share + 2,
            transport=client["transport"],
            proxy=client["proxy"],
            timeout=client["timeout"],
            flood=self.flood,
        )
        share_buckets(
            self.flood, self._flood_options, bot_id=bot.id, bucket_file=init.get("flood_file")
        )
        if init.get("metrics"):
            self._observe(bot)
        if init.get("answers"):
            ANSWERS.enabled = True
            self._answers = {}
        set_username = getattr(frontend.handler, "set_username", None)
        if set_username is not None:
            set_username((await bot.get_me()).get("username"))
        self._queue = await open_worker_queue(init.get("jobs"), token)
        self._store = await open_worker_store(init.get("state"))
        self._broadcasts = await open_worker_broadcasts(bot, init.get("broadcasts"))
        if frontend.startup is not None:
            await frontend.startup()
        self._handler = frontend.handler
        return frontend

    def _observe(self, bot: Bot) -> None:
        from tgrunner.observability import Metrics

        self._metrics = metrics = Metrics(build_info=False)
        bot.observe(metrics.api_result, metrics.api_call_times())
        calls.on_call = metrics.api_call  # an aiogram or PTB bot's own session reports here
        self._snapshot()

    def _snapshot(self, *, again: bool = True) -> None:
        self._send(METRICS, 0, self._metrics.snapshot())
        if again:
            loop = asyncio.get_running_loop()
            self._snapshots = loop.call_later(METRICS_EVERY, self._snapshot)

    async def _close_bot(self) -> None:
        with contextlib.suppress(Exception):
            await close_worker_broadcasts(self._bot, self._broadcasts)
        if self._queue is not None:
            with contextlib.suppress(Exception):
                await self._queue.close()
        if self._store is not None:
            with contextlib.suppress(Exception):
                await self._store.close()
        if self._bot is not None:
            with contextlib.suppress(Exception):
                await self._bot.close()
        if self.flood is not None:
            with contextlib.suppress(Exception):
                await self.flood.close()

    # -- frames from the supervisor -------------------------------------------------------------

    def _readable(self) -> None:
        frames, eof = read_frames(self._reader, self._in_fd)
        for kind, token, payload in frames:
            if kind == RUN:
                if len(self._running) < self.share:
                    self._start(token, payload)
                else:
                    self._waiting[token] = payload
            elif kind == CANCEL:
                self._cancel(token)
            elif kind == STOP:
                self._stopping = True
                self._maybe_done()
        if eof:
            self._supervisor_gone()

    def _start(self, token: int, payload: bytes) -> None:
        assert self._handler is not None
        try:
            update = orjson.loads(payload)
            if self._answers is not None:
                self._answers[token] = update["update_id"]
            aw = self._handler(update, self._bot)
            task = asyncio.ensure_future(aw)
        except Exception as exc:
            self._report_error(token, exc)
            return
        self._running[token] = task
        task.add_done_callback(partial(self._finished, token))

    def _cancel(self, token: int) -> None:
        task = self._running.get(token)
        if task is not None:
            task.cancel("tgrunner: the supervisor's time limit ran out")
        elif self._waiting.pop(token, None) is not None:
            self._send(DONE, token, CANCELLED)

    def _finished(self, token: int, task: asyncio.Future[Any]) -> None:
        self._running.pop(token, None)
        answer = None
        if self._answers is not None and token in self._answers:
            answer = ANSWERS.take(self._answers.pop(token))
        if task.cancelled():
            self._send(DONE, token, CANCELLED)
        else:
            exc = task.exception()
            if exc is None:
                self._send(DONE, token, ANSWER + answer if answer is not None else b"")
            else:
                self._report_error(token, exc)
        waiting = self._waiting
        while waiting and len(self._running) < self.share:
            next_token = next(iter(waiting))
            self._start(next_token, waiting.pop(next_token))
        self._maybe_done()

    def _report_error(self, token: int, exc: BaseException) -> None:
        info = {
            "error": f"{type(exc).__name__}: {exc}",
            "type": type(exc).__name__,
            "traceback": "".join(traceback.format_exception(exc)),
        }
        self._send(DONE, token, FAILED + orjson.dumps(info))

    def _maybe_done(self) -> None:
        if self._stopping and not self._running and not self._waiting:
            self._exit(0)

    def _supervisor_gone(self) -> None:
        # Nobody can receive a result any more: stop at once.
        self._waiting.clear()
        for task in self._running.values():
            task.cancel()
        self._exit(1)

    def _exit(self, code: int) -> None:
        if self._end is not None and not self._end.done():
            self._end.set_result(code)

    def _send(self, kind: int, token: int = 0, payload: bytes = b"") -> None:
        if self._writer is not None:
            self._writer.send(kind, token, payload)

    def _heartbeat(self) -> None:
        self._send(HEARTBEAT)
        self._beat = asyncio.get_running_loop().call_later(
            self.init["heartbeat_interval"], self._heartbeat
        )


def _fatal(exc: BaseException) -> bytes:
    """The FATAL payload for a start-up that raised ``exc``: its line, and after a NUL the
    trimmed traceback when the user's code raised."""
    text = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, UserCodeError):
        text += "\0" + exc.traceback
    return text.encode("utf-8", "replace")


# -- an entry point (``tgrunner run quick:main --workers N``) -----------------------------------


class _Served:
    """What :class:`~tgrunner.runtime.entry.EntryPoint` runs inside the entry point's polling
    call in a worker: this worker, on the Dispatcher or Application the call started. Stopping
    is the supervisor's (STOP), so ``stop()`` does nothing."""

    hard_exit = False

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def serve(self, *, install_signals: bool = True) -> int:
        return await self.worker.serve()

    def stop(self, fast: bool = False) -> None:
        pass


def _serve_entry(init: dict[str, Any], in_fd: int, out_fd: int) -> int:
    """Call the entry point as ``tgrunner run`` does (its code before and after the polling
    call runs here too), and serve the bot its polling call starts as this worker's. A
    failure before the worker served goes to the supervisor as FATAL."""
    target: str = init["target"]
    options = {**init["frontend_options"], "worker_slot": init["slot"]}

    def frontend(found: Any, call: PollingCall | None, flood: FloodControl | None) -> Frontend:
        given = {**options, **(call.options if call is not None else {}), "flood": flood}
        return frontend_for(
            found, token=init["token"] or None, api_url=init["api_url"], name=target, **given
        )

    def build(found: Any, call: PollingCall | None) -> _Served:
        return _Served(Worker(init, in_fd, out_fd, load=partial(frontend, found, call)))

    try:
        fn = import_guarded(target).obj
        return EntryPoint(fn, target, build=build).run()  # type: ignore[arg-type]
    except Exception as exc:
        log.debug("the entry point failed", exc_info=exc)
        os.set_blocking(out_fd, True)
        with contextlib.suppress(OSError):
            os.write(out_fd, encode(FATAL, 0, _fatal(exc)))
        return 2


def _read_init(fd: int) -> dict[str, Any]:
    """The INIT frame, read before there is an event loop (blocking)."""
    data = b""
    while len(data) < HEADER.size:
        chunk = os.read(fd, HEADER.size - len(data))
        if not chunk:
            raise SystemExit(1)  # the supervisor went away before it said anything
        data += chunk
    length, kind, _ = HEADER.unpack(data)
    if kind != INIT:
        raise SystemExit(f"tgrunner worker: expected INIT first, got frame kind {kind}")
    body = b""
    while len(body) < length:
        chunk = os.read(fd, length - len(body))
        if not chunk:
            raise SystemExit(1)
        body += chunk
    init: dict[str, Any] = orjson.loads(body)
    return init


def main(argv: list[str] | None = None) -> int:
    """Run a worker on the fds named by ``argv`` (``IN_FD OUT_FD``); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not all(a.isdigit() for a in args):
        sys.stderr.write("tgrunner worker: this module is started by the supervisor, not by hand\n")
        return 2
    in_fd, out_fd = int(args[0]), int(args[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Handlers that start processes of their own must not hand them our pipes: a pipe held
    # open by a grandchild would hide this process's death from the supervisor.
    os.set_inheritable(in_fd, False)
    os.set_inheritable(out_fd, False)
    init = _read_init(in_fd)
    sys.path[:] = [p for p in init["sys_path"] if isinstance(p, str)]
    share_cores(init["frontend_options"].get("workers", 1))
    logging.basicConfig(
        level=init.get("log_level", logging.WARNING),
        format=f"%(asctime)s %(levelname)s [worker {init.get('slot', '?')}] %(name)s: %(message)s",
    )
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    if init["load_options"].pop("entry", False):
        return _serve_entry(init, in_fd, out_fd)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(Worker(init, in_fd, out_fd).serve())


if __name__ == "__main__":
    sys.exit(main())
