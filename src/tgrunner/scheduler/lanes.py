"""Per-key FIFO lanes behind a global concurrency limit: the order contract, in one process.

::

    sched = Scheduler(handle, options=SchedulerOptions(concurrency=100), on_done=mark_finished)
    await sched.wait_capacity()
    keys = sched.keys_for(update)
    if sched.lane_room(keys):
        sched.submit(update, keys)       # never blocks; the handler starts when its keys are free
    await sched.drain(timeout=10)

What the scheduler promises (the product's contract; every point has a test):

- **Keys.** The key function's result is read by :func:`tgrunner.keys.normalise_keys`: a
  ``str`` or ``bytes`` is one key, a tuple, list or other iterable is many, ``None`` is none,
  and a key listed twice counts once. ``keys_for(item)`` gives that tuple; ``submit(item,
  keys)`` takes it, so the key function runs once per item.
- **Order.** An item with keys K starts only after every earlier-submitted item that shares
  any key in K has finished. For a shared key, start order is submit order. Items that share
  no key run concurrently; an item with no keys runs freely.
- **Limit.** At most ``concurrency`` handlers and hooks hold a slot at once. An item whose
  keys are free waits in a ready queue and starts in the order it became ready. An item
  waiting for a key holds no slot, so one busy chat cannot take the slots of the others.
- **Bounded.** At most ``max_pending`` items are queued or running (``capacity()`` is the
  room left; ``wait_capacity()`` waits for it), and at most ``max_pending_per_key`` of them
  share one key (``lane_room(keys)`` is the room left for an item with those keys, never
  more than ``capacity()``). ``submit()`` beyond them raises :class:`SchedulerFull`, or its
  subclass :class:`LaneFull` when only a lane is full. One full lane never stops the others:
  the runtime keeps an item whose lane is full out of the scheduler (it waits in the
  journal) and submits it once ``lane_room`` allows, while other chats go on.
- **Time limit.** ``handler_timeout`` starts when the handler starts. When it expires the
  handler's task is cancelled, and once it has finished cancelling its keys are released and
  ``on_timeout`` is called. A handler that swallows the cancellation gets ``cancel_grace``
  more seconds. Then it is reported (a warning and ``on_stuck``), its keys are released and
  ``on_timeout`` is called, while its task runs on detached.
- **Failures stay local.** A handler that raises reaches ``on_error`` (or the log, with its
  traceback). A key function that raises, or a handler that returns no awaitable, counts as
  a failure of that item; the item does not run, since without its keys it would break
  order. A handler cancelled by anything but its time limit counts as failed too (the hook
  gets the ``CancelledError``). A failing hook is logged. Nothing stops the scheduler or
  keeps a key held.
- **Reporting.** ``on_done(item)`` is called exactly once for every item that finished:
  success, error, timeout or stuck. It is the signal to advance the offset watermark. It
  comes right after the item's keys are released (``lane_room()`` inside it counts the freed
  place) and before the item's ``on_error`` or ``on_timeout`` hook. Items that
  ``cancel_all()`` drops or cancels before they finish are not reported.
- **Hooks.** ``on_error`` and ``on_timeout`` run after the item's keys are released and it is
  reported, so a hook never holds back the next update of its chat. A hook that returns an
  awaitable (a coroutine function) is awaited in the item's slot, for at most
  ``hook_timeout`` seconds: then it is cancelled with a warning, and one that ignores the
  cancellation for ``cancel_grace`` is reported (a warning and ``on_stuck``) and gives back
  its slot (see :mod:`.hooks`). A synchronous hook runs at once. ``on_done`` and
  ``on_stuck`` are synchronous.

Stuck handlers. A handler that ignores cancellation keeps its slot until its task really
ends, so ``running`` counts it and ``concurrency`` stays a true bound on live handler tasks.
It still executes code, and a recurring bug must not grow their number past the limit. The
cost is visible, never silent: each stuck handler is logged with the count of stuck ones (see
``stuck``), and ``drain()`` waits for them. The runtime's fast exit leaves them behind.

How: each key has a lane, a deque of the items that hold or wait for that key. An item counts
the lanes where it is not at the head; at zero it is ready. A finished item leaves the head of
each of its lanes, and only the new heads are counted down. That is O(k) for k keys, with no
scan, and so are ``submit()`` and ``lane_room()``, which read the length of k lanes. A lane is
deleted when it empties. There is no deadlock: the earliest-submitted unfinished item is at
the head of all of its lanes. Each running handler is one ``asyncio.Task`` (or the future the
handler returned, as is) with a done callback and no wrapper coroutine. There is no thread hop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from functools import partial
from time import perf_counter
from typing import Any, Generic, TypeVar

from tgrunner.errors import ConfigError, LaneFull, SchedulerFull
from tgrunner.keys import default_keys, normalise_keys
from tgrunner.scheduler._entry import (
    CANCELLING,
    DONE,
    DROPPED,
    RUNNING,
    STUCK,
    Entry,
    awaitable_task,
    fail_as_task,
)
from tgrunner.scheduler.describe import describe, short_repr
from tgrunner.scheduler.hooks import Hooks
from tgrunner.scheduler.options import SchedulerOptions
from tgrunner.scheduler.timing import Observer, RunTimes
from tgrunner.scheduler.waiters import Waiters

__all__ = ["LaneFull", "Scheduler", "SchedulerFull", "SchedulerOptions"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_ErrorHook = Callable[[T, BaseException], Awaitable[Any] | None]
_ItemHook = Callable[[T], Awaitable[Any] | None]

_DEFAULT_OPTIONS = SchedulerOptions()
_DEFAULT_KEY: Callable[[Any], Iterable[Hashable] | None] = default_keys


class Scheduler(Generic[T]):
    """Run ``handler(item)`` for each submitted item, in per-key order, under limits.

    - ``handler``: ``async fn(item)``; anything returning an awaitable works.
    - ``options``: :class:`SchedulerOptions` (concurrency 500, no handler time limit, hooks
      limited to 10 s, …).
    - ``key``: ``fn(item) -> keys``: a str for one key, a tuple or other iterable for many,
      None for none; default :func:`tgrunner.keys.default_keys` (the chat).
    - ``on_done(item)``: once per finished item (not for dropped ones), after its keys are
      released and before its error or timeout hook; synchronous.
    - ``on_error(item, exc)``: a handler raised; default: log it with its traceback.
    - ``on_timeout(item)``: a handler hit its time limit; default: log a warning.
    - ``on_stuck(item)``: a cancelled handler or hook ignored cancellation for
      ``cancel_grace``; synchronous. A warning is logged either way.

    Must be used from one event loop; ``submit()`` must be called from inside it. Finished
    items are reported before ``on_done`` to what ``observe()`` set (see :mod:`.timing`).
    """

    def __init__(
        self,
        handler: Callable[[T], Awaitable[Any]],
        *,
        options: SchedulerOptions = _DEFAULT_OPTIONS,
        key: Callable[[T], Iterable[Hashable] | None] = _DEFAULT_KEY,
        on_done: Callable[[T], None] | None = None,
        on_error: _ErrorHook[T] | None = None,
        on_timeout: _ItemHook[T] | None = None,
        on_stuck: Callable[[T], None] | None = None,
    ) -> None:
        if not isinstance(options, SchedulerOptions):
            raise ConfigError(f"options must be a SchedulerOptions, got {type(options).__name__}")
        self.options = options
        self._handler = handler
        self._key = key
        self._on_done = on_done
        self._on_error = on_error
        self._on_timeout = on_timeout
        self._on_stuck = on_stuck
        self.observer: Observer | None = None  # see observe()
        self._run_times: RunTimes | None = None  # observe()'s, while there is an observer
        self._concurrency = options.concurrency
        self._max_pending = options.max_pending
        self._per_key = min(options.max_pending_per_key, options.max_pending)
        self._timeout = options.handler_timeout
        self._grace = options.cancel_grace

        self._lanes: dict[Hashable, deque[Entry]] = {}
        self._ready: deque[Entry] = deque()
        self._tasks: dict[asyncio.Future[Any], Entry] = {}  # live handler tasks
        self._hooks = Hooks(options.hook_timeout, options.cancel_grace, self._report_stuck)
        self._queued = 0
        self._running = 0
        self._waiters = Waiters()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the last submit()
        # The observer's clock (see .timing): when the items that had to wait in this
        # iteration of the loop were queued, and the end of the item being finished.
        self._stamp = 0.0
        self._now = 0.0

    def observe(self, observer: Observer | None, run_times: RunTimes | None = None) -> None:
        """Report each finished item to ``observer``, or those that finished ok to
        ``run_times`` (see :mod:`.timing`); None: report nothing (the default). Set it before
        the first submit, or items under way are reported with a wait of 0."""
        self.observer = observer
        self._run_times = None if observer is None else run_times

    # -- what sources and the runtime see -------------------------------------------------

    @property
    def running(self) -> int:
        """Items holding a slot: running, in their hooks, or stuck (see the module doc)."""
        return self._running

    @property
    def pending(self) -> int:
        """Items submitted and not started yet (waiting for a key or a slot)."""
        return self._queued

    @property
    def lanes(self) -> int:
        """Keys held or waited for by some item; 0 when idle."""
        return len(self._lanes)

    @property
    def stuck(self) -> int:
        """Handlers that ignored cancellation and run on detached, still holding a slot."""
        return sum(1 for e in self._tasks.values() if e.state in (STUCK, DONE))

    def capacity(self) -> int:
        """How many more items may be submitted now, as far as ``max_pending`` goes.

        A full lane does not lower it; ask ``lane_room(keys)`` for an item's own room.
        """
        room = self._max_pending - self._queued - self._running
        return room if room > 0 else 0

    def lane_room(self, keys: Iterable[Hashable]) -> int:
        """How many more items with these keys may be submitted now.

        The least room of their lanes under ``max_pending_per_key``, and never more than
        ``capacity()``; for no keys, ``capacity()``. ``keys`` is what ``keys_for`` returned.
        """
        room = self._max_pending - self._queued - self._running
        lanes = self._lanes
        per_key = self._per_key
        for k in keys:
            lane = lanes.get(k)
            left = per_key if lane is None else per_key - len(lane)
            if left < room:
                room = left
        return room if room > 0 else 0

    def keys_for(self, item: T) -> tuple[Hashable, ...]:
        """The item's keys, as the key function gives them, read by ``normalise_keys``.

        Distinct and in their first order; pass them to ``submit(item, keys)``. Raises what
        the key function raises, or ``TypeError`` for a result that is not keys (an int) or
        an unhashable key. ``submit(item)`` turns such a failure into a failed item instead.
        """
        keys = self._key(item)
        if type(keys) is tuple and len(keys) == 1:
            hash(keys[0])
            return keys
        return normalise_keys(keys)

    def submit(self, item: T, keys: tuple[Hashable, ...] | None = None) -> None:
        """Queue ``item``; it starts as soon as its keys and a slot are free. Never blocks.

        - ``keys``: what ``keys_for(item)`` returned, so the key function is not called
          again; default None: call it now. A key function that raises makes the item fail
          (``on_error``, then ``on_done``) without running it.

        Raises :class:`SchedulerFull` when ``capacity()`` is 0 (await ``wait_capacity()``
        first), and :class:`LaneFull` when a lane of the item's keys is full (keep the item
        and submit it once ``lane_room(keys)`` is above 0). Neither leaves a trace.
        """
        # Fail before touching any state, not halfway through. The loop is kept: asking for
        # it costs a getpid() system call on every submit and start (CPython 3.11).
        loop = self._loop
        if loop is None or not loop.is_running():
            self._loop = asyncio.get_running_loop()
        if self._queued + self._running >= self._max_pending:
            raise SchedulerFull(
                f"the scheduler is full: {self._queued} queued and {self._running} running "
                f"reach max_pending={self._max_pending}; await wait_capacity() before submit()"
            )
        error: Exception | None = None
        if keys is None:
            try:
                keys = self.keys_for(item)
            except Exception as exc:
                keys = ()
                error = exc
        elif type(keys) is not tuple:
            raise TypeError(
                f"submit() takes the keys as the tuple keys_for() returns, got {short_repr(keys)}"
            )
        elif len(keys) > 1:
            keys = tuple(dict.fromkeys(keys))  # hashes them all before any state changes
        lanes = self._lanes
        per_key = self._per_key
        if per_key < self._max_pending:  # else the global check above covers every lane
            for k in keys:
                lane = lanes.get(k)
                if lane is not None and len(lane) >= per_key:
                    raise LaneFull(
                        f"the lane of key {short_repr(k)} is full: {len(lane)} items reach "
                        f"max_pending_per_key={per_key}. Keep {describe(item)} out of the "
                        "scheduler and submit it once lane_room(keys) is above 0 (or raise "
                        "max_pending_per_key)",
                        k,
                    )
        entry = Entry(item, keys)
        if error is not None:
            entry.error = error
        blocked = 0
        for k in keys:
            lane = lanes.get(k)
            if lane is None:
                lanes[k] = deque((entry,))
            else:
                lane.append(entry)
                blocked += 1
        self._queued += 1
        if blocked:
            entry.blocked = blocked
            if self.observer is not None:
                entry.submitted = self._stamp or self._new_stamp()
        else:
            self._make_ready(entry)

    async def wait_capacity(self, n: int = 1) -> None:
        """Return once ``capacity() >= n``. Event-driven; raises ValueError if it never can.

        A full lane does not hold it back (see ``lane_room``).
        """
        if n > self._max_pending:
            raise ValueError(
                f"wait_capacity({n}) would never return: capacity is at most "
                f"max_pending={self._max_pending}"
            )
        await self._waiters.room(n, self.capacity)

    # The runtime's stop path passes its grace period here; a parameter reads better there
    # than an asyncio.timeout block around a call that must report whether it drained.
    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running; False if ``timeout`` seconds ran out first.

        Stuck handlers and running hooks count as running (see the module doc); detached
        hooks do not. ``timeout`` None waits forever.
        """
        if not self._queued and not self._running:
            return True
        return await self._waiters.until_idle(timeout)

    async def cancel_all(self) -> None:
        """Drop every queued item and cancel every running handler and hook, for a fast exit.

        Nothing dropped or cancelled is reported to any hook (an item in its hook was
        reported before it). Waits up to ``cancel_grace`` seconds for the cancelled tasks to
        end and logs those that do not; they keep their slots until they end. The scheduler
        stays usable afterwards.
        """
        for lane in self._lanes.values():
            for entry in lane:
                entry.state = DROPPED
        for entry in self._ready:
            entry.state = DROPPED
        self._lanes.clear()
        self._ready.clear()
        self._queued = 0
        me = asyncio.current_task()
        waiting: list[asyncio.Future[Any]] = []
        for task, entry in list(self._tasks.items()):
            entry.state = DROPPED
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            task.cancel("tgrunner scheduler: cancel_all")
            if task is not me:
                waiting.append(task)
        waiting.extend(task for task in self._hooks.cancel_all() if task is not me)
        self._wake()
        if not waiting:
            return
        _, left = await asyncio.wait(waiting, timeout=self._grace)
        if left:
            log.warning(
                "%d cancelled handler(s) or hook(s) still run after %g s; they ignore "
                "cancellation and are left behind",
                len(left),
                self._grace,
            )

    # -- the life of an item ----------------------------------------------------------------

    def _new_stamp(self) -> float:
        # When the items that wait were queued: once per iteration of the loop (see .timing).
        assert self._loop is not None  # set by submit(), which comes first
        self._stamp = stamp = perf_counter()
        self._loop.call_soon(self._forget_stamp)
        return stamp

    def _forget_stamp(self) -> None:
        self._stamp = 0.0

    def _make_ready(self, entry: Entry) -> None:
        if self._running < self._concurrency and not self._ready:
            self._start(entry)
        else:
            if self.observer is not None and not entry.submitted:
                entry.submitted = self._now or self._stamp or self._new_stamp()
            self._ready.append(entry)

    def _start(self, entry: Entry) -> None:
        self._queued -= 1
        self._running += 1
        entry.state = RUNNING
        entry.refs = 1
        if self.observer is not None:
            entry.started = self._now or perf_counter()  # submitted stays 0.0: no wait
        loop = self._loop
        assert loop is not None  # set by submit(), which comes first
        if entry.error is None:
            try:
                aw: Any = self._handler(entry.item)
            except Exception as exc:
                aw = fail_as_task(exc)
        else:
            aw = fail_as_task(entry.error)
        task: asyncio.Future[Any]
        if isinstance(aw, asyncio.Future):  # a future (the worker-process executor's): as is
            task = aw
        else:
            try:
                task = loop.create_task(aw)
            except TypeError:  # not a coroutine: another awaitable, or a mistake
                task = awaitable_task(loop, aw)
        task.add_done_callback(self._task_done)
        self._tasks[task] = entry
        entry.task = task
        if self._timeout is not None:
            entry.timer = loop.call_later(self._timeout, self._expire, entry)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        entry = self._tasks.pop(task)
        state = entry.state
        if state is RUNNING or state is CANCELLING:
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            if task.cancelled():
                exc: BaseException | None = None
                if state is RUNNING:
                    exc = asyncio.CancelledError("the handler was cancelled, not by its time limit")
            else:
                exc = task.exception()
            if self.observer is not None:  # once per update: the usual case inlined
                self._now = now = perf_counter()  # also the start of what this end lets start
                times = self._run_times
                if times is not None and exc is None and state is RUNNING:
                    started, submitted = entry.started, entry.submitted
                    runs = times.runs
                    runs.append(now - started)
                    if submitted:
                        times.waits.append(started - submitted)
                    if len(runs) >= times.every:
                        times.fold()
                else:
                    self._observe(entry, exc, state is CANCELLING, now)
            if state is CANCELLING:
                if exc is not None:
                    log.warning(
                        "handler on %s raised while being cancelled for its time limit",
                        describe(entry.item),
                        exc_info=exc,
                    )
                self._timed_out(entry)
            else:
                self._complete(entry)
                if exc is not None:
                    if self._on_error is None:
                        log.error("handler failed on %s", describe(entry.item), exc_info=exc)
                    else:
                        self._call_hook(entry, self._on_error, (entry.item, exc), "on_error")
        else:
            # Stuck (already reported) or dropped: only the slot is left to give back.
            exc = None if task.cancelled() else task.exception()  # retrieved, so never logged
            if state is not DROPPED:
                log.info("stuck handler on %s has ended", describe(entry.item), exc_info=exc)
        self._unref(entry)
        self._now = 0.0  # read by _start() only while this end lets items start

    def _expire(self, entry: Entry) -> None:
        entry.timer = None
        task = entry.task
        if entry.state is not RUNNING or task is None or task.done():
            return  # it finished in this very loop iteration
        entry.state = CANCELLING
        task.cancel(f"tgrunner scheduler: time limit of {self._timeout} s")
        entry.timer = asyncio.get_running_loop().call_later(self._grace, self._give_up, entry)

    def _give_up(self, entry: Entry) -> None:
        entry.timer = None
        task = entry.task
        if entry.state is not CANCELLING or task is None or task.done():
            return
        entry.state = STUCK
        if self.observer is not None:
            self._observe(entry, None, True, perf_counter())
        log.warning(
            "handler on %s ignored cancellation for %g s after its time limit of %g s; its "
            "keys are released and it runs on detached, holding one of %d slots (%d stuck)",
            describe(entry.item),
            self._grace,
            self._timeout,
            self._concurrency,
            self.stuck,
        )
        self._report_stuck(entry.item)
        self._timed_out(entry)

    def _observe(
        self, entry: Entry, exc: BaseException | None, timed_out: bool, now: float
    ) -> None:
        started, submitted = entry.started, entry.submitted
        try:
            waited = started - submitted if submitted else 0.0
            self.observer(entry.item, exc, timed_out, now - started, waited)  # type: ignore[misc]
        except Exception:
            log.exception("the scheduler's observer failed on %s", describe(entry.item))

    def _report_stuck(self, item: Any) -> None:
        if self._on_stuck is not None:
            try:
                self._on_stuck(item)
            except Exception:
                log.exception("the on_stuck hook failed on %s", describe(item))

    def _timed_out(self, entry: Entry) -> None:
        stuck = entry.state is STUCK
        self._complete(entry)
        if self._on_timeout is not None:
            self._call_hook(entry, self._on_timeout, (entry.item,), "on_timeout")
        elif not stuck:  # a stuck one was just logged
            log.warning(
                "handler on %s hit its time limit of %g s and was cancelled",
                describe(entry.item),
                self._timeout,
            )

    def _call_hook(
        self, entry: Entry, hook: Callable[..., Any], args: tuple[Any, ...], name: str
    ) -> None:
        """Run an error or timeout hook; the item is reported and its keys are released."""
        try:
            result = hook(*args)
        except Exception:
            log.exception("the %s hook failed on %s", name, describe(entry.item))
            return
        if result is not None and inspect.isawaitable(result):
            entry.refs += 1
            self._hooks.start(entry.item, name, result, partial(self._unref, entry))

    def _complete(self, entry: Entry) -> None:
        """Release the item's keys and report it done; the slot is given back by _unref."""
        entry.state = DONE
        lanes = self._lanes
        for k in entry.keys:
            lane = lanes[k]
            lane.popleft()  # this entry: it could only run at the head of each of its lanes
            if lane:
                head = lane[0]
                head.blocked -= 1
                if not head.blocked:
                    self._make_ready(head)
            else:
                del lanes[k]
        if self._on_done is not None:
            try:
                self._on_done(entry.item)
            except Exception:
                log.exception("the on_done hook failed on %s", describe(entry.item))

    def _unref(self, entry: Entry) -> None:
        entry.refs -= 1
        if entry.refs:
            return
        self._running -= 1
        ready = self._ready
        while ready and self._running < self._concurrency:
            self._start(ready.popleft())
        waiters = self._waiters
        if waiters.capacity or waiters.idle:
            self._wake()

    def _wake(self) -> None:
        self._waiters.wake(self.capacity(), not self._queued and not self._running)
