"""The worker-process executor: updates run in a pool of worker processes, per-key order kept.

::

    executor = ProcessExecutor("mybot:router", token=TOKEN, share=250,
                               options=WorkerOptions(workers=4))
    await executor.start()                      # every worker loaded the bot and is ready
    scheduler = Scheduler(executor.execute, ...)  # as the runner composes them
    ...
    await executor.close()                      # workers drain, run shutdown hooks, exit 0

The supervisor (this process) keeps the source, the journal and the scheduler's lanes; it
knows nothing about handlers. The scheduler hands it an update only when every earlier update
sharing one of its keys has finished, so per-key order holds across processes.

- **Sticky routing.** An update goes to the slot given by a stable hash of its first key
  (:mod:`.routing`), so a chat stays in one process. An update with no key goes to the slot
  with the fewest updates in flight. Each worker runs at most ``share`` handlers at once.
- **A dead worker** is seen at once (:mod:`.process`), and a new process is started in its
  slot. What was in flight there goes to the new process again, in the order it first came;
  its awaitables stay pending meanwhile, so the offset or journal never passes them. An
  update in flight at two deaths is a *suspect*: it then runs alone on its worker, so a third
  death is blamed on it alone.
- **A poison update** in flight at 3 deaths of its worker is not sent again: its awaitable
  fails with :class:`~tgrunner.errors.PoisonUpdate`, for the runner to quarantine it.
- **A hung worker** (no heartbeat for ``heartbeat_timeout``) is terminated, then handled as a
  dead one; the other workers go on meanwhile.
- **A crash loop at start-up** (3 failures in a row to get a slot's process ready: an import
  error, a failing startup hook) raises :class:`~tgrunner.errors.ConfigError` with the
  worker's error from ``start()``, or from ``replace_workers()``; later (a restart), it is
  given to ``on_failure`` and the slot's updates wait.
- **A handler that raises** fails its awaitable with :class:`~tgrunner.errors.HandlerError`
  (the worker's traceback is its ``__cause__``). A cancelled awaitable (the scheduler's time
  limit) sends CANCEL: the worker cancels the handler, and the future ends when it has.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any
from zlib import crc32

import orjson

from tgrunner.client.bot import DEFAULT_API_URL
from tgrunner.client.options import ClientOptions
from tgrunner.errors import ConfigError
from tgrunner.executors.processes.options import CRASH_LIMIT, WorkerOptions
from tgrunner.executors.processes.pool import Pool
from tgrunner.executors.processes.process import State
from tgrunner.executors.processes.routing import stable_hash
from tgrunner.executors.processes.slots import Job, Slot, WorkerEvent, WorkerStats
from tgrunner.executors.processes.wire import RUN
from tgrunner.flood.options import FloodOptions
from tgrunner.keys import default_keys, normalise_keys
from tgrunner.protocols import Update

__all__ = ["ProcessExecutor", "WorkerEvent", "WorkerStats"]

log = logging.getLogger("tgrunner.executors.processes")

# How long close() waits for killed processes to be reaped.
_REAP_TIMEOUT = 5.0


class ProcessExecutor:
    """Run updates in worker processes that load the bot from ``target`` (``module:attr``).

    - ``token``, ``api_url`` (default Telegram's): each worker's own Bot, and the framework's.
    - ``share``: most handlers each worker runs at once (see
      :func:`~tgrunner.executors.processes.options.share_of`), at least 1.
    - ``options``: :class:`WorkerOptions` (2 workers, heartbeat timeout 10 s, start-up grace
      60 s, …).
    - ``keys``: the key function of the scheduler (default :func:`~tgrunner.keys.default_keys`);
      the first key routes.
    - ``client``: the workers' Bot API client options (transport, proxy, timeout).
    - ``flood``: the workers' flood control options (default: reactive); each worker builds
      its own flood control from them. ``flood_file`` (default None: none): the file where
      they share the global buckets.
    - ``load_options`` / ``frontend_options``: keyword arguments for ``load_target`` and
      ``frontend_for`` in the workers (JSON values only), default none.
    - ``on_failure(exc)``: a slot's restart hit the crash limit after ``start()`` (a
      ConfigError); the runner should stop. Default: only logged.
    - ``on_event(event)``: every :class:`WorkerEvent`, default none.
    - ``on_poison(update_id)``: called just before a poison update's awaitable fails with
      PoisonUpdate (so before the scheduler reports it done), for the runner to quarantine
      it instead of marking it finished. Default none.
    """

    def __init__(
        self,
        target: str,
        *,
        token: str,
        api_url: str = DEFAULT_API_URL,
        share: int,
        options: WorkerOptions | None = None,
        keys: Callable[[Any], Iterable[Hashable] | None] = default_keys,
        client: ClientOptions | None = None,
        flood: FloodOptions | None = None,
        flood_file: str | None = None,
        load_options: Mapping[str, Any] | None = None,
        frontend_options: Mapping[str, Any] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        on_event: Callable[[WorkerEvent], None] | None = None,
        on_poison: Callable[[int | None], None] | None = None,
    ) -> None:
        if not isinstance(target, str) or ":" not in target:
            raise ConfigError(
                f"Worker processes load the bot from an import string like 'mybot:router', "
                f"got {target!r}: make the bot importable and pass its import string."
            )
        if isinstance(share, bool) or not isinstance(share, int) or share < 1:
            raise ConfigError(f"share must be a whole number of at least 1, got {share!r}")
        self.target = target
        self.options = options = options or WorkerOptions()
        self.share = share
        client = client or ClientOptions()
        self._init: dict[str, Any] = {
            "target": target,
            "token": token,
            "api_url": api_url,
            "share": share,
            "heartbeat_interval": options.heartbeat_interval,
            "client": {
                "transport": client.transport,
                "proxy": client.proxy,
                "timeout": client.timeout,
            },
            "flood": (flood or FloodOptions()).to_json(),
            "flood_file": flood_file,
            "load_options": dict(load_options or {}),
            "frontend_options": dict(frontend_options or {}),
        }
        try:
            orjson.dumps(self._init)
        except TypeError as exc:
            raise ConfigError(
                f"The options for worker processes must be JSON values (str, numbers, lists, "
                f"dicts): {exc}"
            ) from None
        self._keys = keys
        self._pool = Pool(
            options, self._init, on_failure=on_failure, on_event=on_event, on_poison=on_poison
        )
        self._slots = self._pool.slots
        self._tokens = itertools.count(1)
        self._state = "new"  # -> starting -> running -> closing -> closed
        self._replacing = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._before_start: Callable[[], Awaitable[None]] | None = None

    def bind(
        self,
        *,
        on_failure: Callable[[BaseException], None] | None = None,
        on_event: Callable[[WorkerEvent], None] | None = None,
        on_poison: Callable[[int | None], None] | None = None,
        on_metrics: Callable[[int, int, bytes], None] | None = None,
        answers: bool = False,
        jobs: Mapping[str, Any] | None = None,
        state: Mapping[str, Any] | None = None,
        broadcasts: str | None = None,
        before_start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Add hooks after construction (the runtime driving the executor does, before
        ``start()``); each is called before the one given to the constructor, if any.

        ``answers``: the workers hand back the method a handler left as its webhook's answer
        (:mod:`tgrunner.answers`; a direct-mode webhook), default False.

        ``on_metrics(slot, pid, snapshot)``: the workers keep metrics and send their
        snapshots (:meth:`~tgrunner.observability.Metrics.snapshot`), about every second and
        at exit; default: they keep none.

        ``jobs``: the job queue each worker opens before its start-up hook (JSON; see
        :meth:`tgrunner.runtime.jobs.BotJobs.for_workers`), default None: none.

        ``state``: the state store each worker opens before its start-up hook (JSON; see
        :meth:`tgrunner.runtime.state.BotState.for_workers`), default None: none.

        ``broadcasts``: the outbox file each worker resumes broadcasts from and sends new ones
        through (see :mod:`tgrunner.runtime.broadcasts`), default None: none.

        ``before_start()``: awaited by :meth:`start` before any worker is spawned (a check of
        what every worker will need, so that its failure is reported once), default none.
        """
        pool = self._pool
        if answers:
            self._init["answers"] = True
        if jobs is not None:
            self._init["jobs"] = dict(jobs)
        if state is not None:
            self._init["state"] = dict(state)
        if broadcasts is not None:
            self._init["broadcasts"] = broadcasts
        if before_start is not None:
            self._before_start = before_start
        if on_metrics is not None:
            pool.on_metrics = on_metrics
            self._init["metrics"] = True
        pool._on_failure = _chain(on_failure, pool._on_failure)
        pool._on_event = _chain(on_event, pool._on_event)
        pool._on_poison = _chain(on_poison, pool._on_poison)

    @property
    def ready(self) -> bool:
        """Whether every slot has a ready worker process."""
        return all(slot.ready for slot in self._slots)

    @property
    def closing(self) -> bool:
        """Whether ``close()`` has begun (worker deaths from then on restart nothing)."""
        return self._pool.closing

    @property
    def poisoned(self) -> int:
        """Updates set aside as poison since start."""
        return self._pool.poisoned

    def stats(self) -> list[WorkerStats]:
        """Per slot: pid, state, updates in flight, done, restarts, replacements."""
        return self._pool.stats()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until all are ready.

        Raises ConfigError (with the worker's error) when a slot fails to start
        :data:`CRASH_LIMIT` times in a row; the other workers are then killed. A cancelled
        start kills what it started.
        """
        if self._state != "new":
            raise RuntimeError("ProcessExecutor.start() was already called")
        self._state = "starting"
        self._loop = loop = asyncio.get_running_loop()
        if self._before_start is not None:
            try:
                await self._before_start()
            except BaseException:
                self._state = "closed"
                raise
        waiters = []
        for slot in self._slots:
            slot.first_ready = loop.create_future()
            waiters.append(slot.first_ready)
            self._pool.spawn(slot)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_EXCEPTION)
            for fut in waiters:
                if fut.done() and fut.exception() is not None:
                    raise fut.exception()  # type: ignore[misc]
        except BaseException:
            for fut in waiters:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # retrieved: the first failure is the one raised
            self._state = "closing"
            self._pool.closing = True
            await asyncio.shield(self._pool.kill_all(_REAP_TIMEOUT))
            self._state = "closed"
            raise
        self._state = "running"
        log.info(
            "%d worker processes ready (pids %s), %d handlers each",
            len(self._slots),
            ", ".join(str(s.current.pid) for s in self._slots if s.current is not None),
            self.share,
        )

    async def close(self, *, fast: bool = False) -> None:
        """Stop every worker: STOP (they finish what they run, run the bot's shutdown hook and
        exit 0), waiting up to ``stop_timeout`` before killing the rest. ``fast`` kills them at
        once. Updates still in flight (the runner drains or cancels them first) are cancelled.
        Safe to call twice."""
        if self._state in ("closing", "closed"):
            return
        self._state = "closing"
        pool = self._pool
        pool.closing = True
        pool.cancel_waiting()
        workers = list(pool.alive)
        for w in workers:
            if fast:
                w.expected_end = True
                w.kill()
            else:
                w.stop()
        exits = [w.exited for w in workers]
        if exits:
            _, late = await asyncio.wait(exits, timeout=self.options.stop_timeout)
            if late:
                log.warning("%d worker(s) did not stop within %g s; killing them", len(late),
                            self.options.stop_timeout)  # fmt: skip
                await pool.kill_all(_REAP_TIMEOUT)
        pool.cancel_waiting()
        self._state = "closed"

    async def replace_workers(self) -> None:
        """Replace every worker process, one at a time (new bot code is loaded).

        For each slot: a new process is started; once it is ready it takes the slot's new
        updates, and the old one is told to STOP, finishes what it runs and exits (killed after
        ``stop_timeout``). Nothing is lost or handled twice. Raises ConfigError when a new
        process fails to start :data:`CRASH_LIMIT` times in a row; the old one then keeps its
        slot, and the slots not reached yet keep theirs.
        """
        if self._state != "running":
            raise RuntimeError("replace_workers() needs a started, open executor")
        async with self._replacing:
            for slot in self._slots:
                await self._replace(slot)

    async def _replace(self, slot: Slot) -> None:
        # A slot that is restarting is waited for; one that hit its crash limit is retried
        # (the new code may have the fix).
        while not slot.ready and slot.failure is None:
            slot.serving.clear()
            await slot.serving.wait()
            self._check_open()
        slot.next_failures = 0
        loop = asyncio.get_running_loop()
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            nxt = self._pool.spawn(slot, role="next", ready=ready)
            try:
                await ready
            except ConfigError:
                self._check_open()
                if nxt is None or slot.next_failures >= CRASH_LIMIT:
                    raise
                continue
            self._check_open()
            if nxt is not None and nxt.state is State.READY:
                break
        old = slot.current
        slot.current = nxt
        slot.next = None
        slot.replaced += 1
        if slot.failure is not None:
            slot.failure = None
            slot.start_failures = 0
        slot.serving.set()
        self._pool.pump(slot)
        if old is None:
            return
        old.stop()
        log.info("%r replaced %r; it finishes %d update(s)", nxt, old, len(old.sent))
        try:
            async with asyncio.timeout(self.options.stop_timeout):
                await asyncio.shield(old.exited)
        except TimeoutError:
            log.warning("%r did not stop within %g s; killing it", old, self.options.stop_timeout)
            old.expected_end = True  # its unfinished updates go to the new one, not blamed
            old.kill()
            await asyncio.shield(old.exited)

    def _check_open(self) -> None:
        if self._state != "running":
            raise RuntimeError("the ProcessExecutor was closed during replace_workers()")

    # -- the hot path ---------------------------------------------------------------------------

    def execute(self, update: Update) -> asyncio.Future[None]:
        """Send ``update`` to its worker; the future returned ends when it is finished.

        It raises :class:`~tgrunner.errors.HandlerError` when the handler raised,
        :class:`~tgrunner.errors.PoisonUpdate` when the update was in flight at 3 deaths of
        its worker. Cancelling it cancels the handler in the worker.
        """
        if self._state != "running":
            raise RuntimeError(f"the ProcessExecutor is {self._state}, not running")
        loop = self._loop  # kept: asking for it costs a getpid() system call (CPython 3.11)
        assert loop is not None  # set by start()
        slots = self._slots
        try:
            keys = self._keys(update)
            if type(keys) is not tuple:
                keys = normalise_keys(keys)
        except Exception:  # the scheduler reports a failing key function; route it anyway
            keys = ()
        if keys:
            key = keys[0]
            # stable_hash() inlined for the usual str key (one call less per update).
            h = (
                crc32(key.encode("utf-8", "surrogatepass"))
                if type(key) is str
                else stable_hash(key)
            )
            slot = slots[h % len(slots)]
        else:
            slot = min(slots, key=_load)
        job = Job(
            loop,
            next(self._tokens),
            update.get("update_id"),
            orjson.dumps(update),
            slot.unsent_cancelled,
        )
        slot.in_flight += 1
        current = slot.current
        if current is not None and current.state is State.READY and not slot.suspects:
            job.worker = current
            current.sent[job.token] = job
            current.send(RUN, job.token, job.data)
        else:
            slot.queue.append(job)
        return job


def _load(slot: Slot) -> int:
    return slot.in_flight


def _chain(first: Callable[[Any], None] | None, then: Callable[[Any], None] | None) -> Any:
    if first is None or then is None:
        return first or then

    def both(arg: Any) -> None:
        try:
            first(arg)
        finally:
            then(arg)

    return both
