"""Per-key FIFO lanes behind a global concurrency limit: the order contract, in one process.

::

    sched = Scheduler(handle, options=SchedulerOptions(concurrency=100), on_done=mark_finished)
    await sched.wait_capacity()
    sched.submit(update)                 # never blocks; the handler starts when its keys are free
    await sched.drain(timeout=10)

What the scheduler promises (the product's contract; every point has a test):

- **Order.** An item with keys K starts only after every earlier-submitted item that shares
  any key in K has finished. For a shared key, start order is submit order. Items that share
  no key run concurrently; an item with no keys runs freely.
- **Limit.** At most ``concurrency`` items hold a slot at once. An item whose keys are free
  waits in a ready queue and starts in the order it became ready. An item waiting for a key
  holds no slot, so one busy chat cannot take the slots of the others.
- **Bounded.** At most ``max_pending`` items are queued or running, and at most
  ``max_pending_per_key`` of them share one key. ``capacity()`` is how many more items may
  be submitted now, whatever their keys; ``submit()`` beyond it raises
  :class:`SchedulerFull`. Sources ask ``capacity()`` how much to fetch, and wait with
  ``wait_capacity()``.
- **Time limit.** ``handler_timeout`` starts when the handler starts. When it expires the
  handler's task is cancelled, and once it has finished cancelling ``on_timeout`` is called
  and its keys are released. A handler that swallows the cancellation gets ``cancel_grace``
  more seconds. Then it is reported (a warning and ``on_stuck``), ``on_timeout`` is called and
  its keys are released, while its task runs on detached.
- **Failures stay local.** A handler that raises reaches ``on_error`` (or the log, with its
  traceback). A key function that raises, or a handler that returns no awaitable, counts as
  a failure of that item; the item does not run, since without its keys it would break
  order. A handler cancelled by anything but its time limit counts as failed too (the hook
  gets the ``CancelledError``). A failing hook is logged. Nothing stops the scheduler or
  keeps a key held.
- **Reporting.** ``on_done(item)`` is called exactly once for every item that finished:
  success, error, timeout or stuck. It is the signal to advance the offset watermark. Items
  that ``cancel_all()`` drops or cancels are not reported.
- **Hooks.** ``on_error`` and ``on_timeout`` run after the handler, in its slot and before
  its keys are released. A hook that returns an awaitable (a coroutine function) is awaited.
  Hooks have no time limit. ``on_done`` and ``on_stuck`` are synchronous.

Stuck handlers. A handler that ignores cancellation keeps its slot until its task really
ends, so ``running`` counts it and ``concurrency`` stays a true bound on live handler tasks.
It still executes code, and a recurring bug must not grow their number past the limit. The
cost is visible, never silent: each stuck handler is logged with the count of stuck ones (see
``stuck``), and ``drain()`` waits for them. The runtime's fast exit leaves them behind.

How: each key has a lane, a deque of the items that hold or wait for that key. An item counts
the lanes where it is not at the head; at zero it is ready. A finished item leaves the head of
each of its lanes, and only the new heads are counted down. That is O(k) for k keys, with no
scan. A lane is deleted when it empties. There is no deadlock: the earliest-submitted
unfinished item is at the head of all of its lanes. Each running handler is one
``asyncio.Task`` with a done callback and no wrapper coroutine. There is no thread hop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import reprlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tgrunner.errors import ConfigError, SchedulerFull
from tgrunner.keys import default_keys

__all__ = ["Scheduler", "SchedulerFull", "SchedulerOptions"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_ErrorHook = Callable[[T, BaseException], Awaitable[Any] | None]
_ItemHook = Callable[[T], Awaitable[Any] | None]


def _whole(value: object, name: str, low: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(
            f"{name} must be a whole number of at least {low} ({meaning}), got {value!r}"
        )


def _seconds(value: object, name: str, meaning: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a positive number of seconds ({meaning}), got {value!r}")


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    """Limits of the scheduler; invalid values raise :class:`~tgrunner.errors.ConfigError`.

    - ``concurrency``: most handlers holding a slot at once, default 500.
    - ``max_pending_per_key``: most items, queued or running, that share one key, default
      1000; above ``max_pending`` it acts as ``max_pending``.
    - ``max_pending``: most items queued or running in all, the memory bound, default 10000.
      At least ``concurrency``.
    - ``handler_timeout``: seconds a handler may run, counted from its start; default None
      (no limit).
    - ``cancel_grace``: seconds a cancelled handler may take to finish before it is reported
      stuck and its keys are released, default 5.
    """

    concurrency: int = 500
    max_pending_per_key: int = 1000
    max_pending: int = 10_000
    handler_timeout: float | None = None
    cancel_grace: float = 5.0

    def __post_init__(self) -> None:
        _whole(self.concurrency, "concurrency", 1, "how many handlers may run at once")
        _whole(self.max_pending, "max_pending", 1, "how many updates may be queued or running")
        _whole(
            self.max_pending_per_key,
            "max_pending_per_key",
            1,
            "how many updates of one chat may be queued or running",
        )
        if self.max_pending < self.concurrency:
            raise ConfigError(
                f"max_pending ({self.max_pending}) is below concurrency ({self.concurrency}): "
                "it counts running handlers too. Raise max_pending or lower concurrency."
            )
        if self.handler_timeout is not None:
            _seconds(
                self.handler_timeout, "handler_timeout", "a handler's time limit; None for no limit"
            )
        _seconds(self.cancel_grace, "cancel_grace", "how long a cancelled handler may take to stop")


_DEFAULT_OPTIONS = SchedulerOptions()
_DEFAULT_KEY: Callable[[Any], Sequence[Hashable]] = default_keys

# The life of an entry. RUNNING and CANCELLING handlers are reported when their task ends;
# in every other state the task's end only gives back the slot.
_QUEUED, _RUNNING, _CANCELLING, _HOOKS, _STUCK, _DONE, _DROPPED = range(7)

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80


def _describe(item: object) -> str:
    if isinstance(item, Mapping) and "update_id" in item:
        return f"update {item['update_id']}"
    return _repr.repr(item)


async def _raise(exc: BaseException) -> None:
    # Turns a failure before the handler could start into an ordinary failed task, so it
    # takes the same path (on_error, on_done, slot) as a handler that raised.
    raise exc


class _Entry:
    """One submitted item and its bookkeeping."""

    __slots__ = ("blocked", "error", "item", "keys", "refs", "state", "task", "timer")

    def __init__(self, item: Any, keys: tuple[Hashable, ...]) -> None:
        self.item = item
        self.keys = keys
        self.blocked = 0  # lanes where this entry is not at the head
        self.state = _QUEUED
        self.error: BaseException | None = None  # set when the key function failed
        self.task: asyncio.Future[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        # What holds the slot: the handler's task, and a hook's task while one runs.
        self.refs = 0


class Scheduler(Generic[T]):
    """Run ``handler(item)`` for each submitted item, in per-key order, under limits.

    - ``handler``: ``async fn(item)``; anything returning an awaitable works.
    - ``options``: :class:`SchedulerOptions` (concurrency 500, no time limit, …).
    - ``key``: ``fn(item) -> keys``; default :func:`tgrunner.keys.default_keys` (the chat).
    - ``on_done(item)``: once per finished item (not for dropped ones); synchronous.
    - ``on_error(item, exc)``: a handler raised; default: log it with its traceback.
    - ``on_timeout(item)``: a handler hit its time limit; default: log a warning.
    - ``on_stuck(item)``: a cancelled handler ignored cancellation for ``cancel_grace``;
      synchronous. A warning is logged either way.

    Must be used from one event loop; ``submit()`` must be called from inside it.
    """

    def __init__(
        self,
        handler: Callable[[T], Awaitable[Any]],
        *,
        options: SchedulerOptions = _DEFAULT_OPTIONS,
        key: Callable[[T], Sequence[Hashable]] = _DEFAULT_KEY,
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
        self._concurrency = options.concurrency
        self._max_pending = options.max_pending
        self._per_key = min(options.max_pending_per_key, options.max_pending)
        self._timeout = options.handler_timeout
        self._grace = options.cancel_grace

        self._lanes: dict[Hashable, deque[_Entry]] = {}
        self._ready: deque[_Entry] = deque()
        self._tasks: dict[asyncio.Future[Any], _Entry] = {}  # live handler tasks
        self._hooks: dict[asyncio.Task[None], _Entry] = {}  # awaited on_error/on_timeout
        self._queued = 0
        self._running = 0
        # _lane_lens[n] counts lanes of length n, so the longest lane (and with it the exact
        # capacity) stays O(1) to maintain: lengths move by one, so the longest moves by at
        # most one. Index 0 is bookkeeping only and never read.
        self._lane_lens = [0] * (self._per_key + 2)
        self._longest = 0
        self._capacity_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._idle_waiters: list[asyncio.Future[None]] = []

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
        return sum(1 for e in self._tasks.values() if e.state in (_STUCK, _DONE))

    def capacity(self) -> int:
        """How many more items may be submitted now, whatever their keys."""
        return max(0, self._max_pending - self._queued - self._running)

    def keys_for(self, item: T) -> tuple[Hashable, ...]:
        """TEMPORARY shim (replaced by the scheduler branch): normalised keys."""
        keys = self._key(item)
        if keys is None:
            return ()
        if isinstance(keys, str | bytes):
            return (keys,)
        return tuple(dict.fromkeys(keys))

    def lane_room(self, keys: tuple[Hashable, ...]) -> int:
        """TEMPORARY shim: room in the fullest of these lanes, or the global room."""
        room = self._max_pending - self._queued - self._running
        for k in keys:
            lane = self._lanes.get(k)
            if lane is not None:
                room = min(room, self._per_key - len(lane))
        return max(room, 0)

    def submit(self, item: T, keys: tuple[Hashable, ...] | None = None) -> None:
        """Queue ``item``; it starts as soon as its keys and a slot are free. Never blocks.

        Raises :class:`SchedulerFull` when ``capacity()`` is 0: the caller must wait with
        ``wait_capacity()`` first.
        """
        asyncio.get_running_loop()  # fail before touching any state, not halfway through
        if self._max_pending - self._queued - self._running <= 0:
            raise SchedulerFull(
                f"the scheduler is full ({self._queued} queued, {self._running} running, "
                f"longest key lane {self._longest} of {self._per_key}); await "
                "wait_capacity() before submit()"
            )
        try:
            if keys is None:
                keys = self.keys_for(item)
            if type(keys) is not tuple:
                keys = tuple(keys)
            if len(keys) > 1:
                # A key listed twice would wait behind itself forever.
                keys = tuple(dict.fromkeys(keys))
            elif keys:
                hash(keys[0])
        except Exception as exc:
            entry = _Entry(item, ())
            entry.error = exc
        else:
            entry = _Entry(item, keys)
        self._queued += 1
        lanes = self._lanes
        lens = self._lane_lens
        blocked = 0
        for k in entry.keys:
            lane = lanes.get(k)
            if lane is None:
                lanes[k] = deque((entry,))
                n = 0
            else:
                n = len(lane)
                lane.append(entry)
                blocked += 1
            lens[n] -= 1
            lens[n + 1] += 1
            if n >= self._longest:
                self._longest = n + 1
        if blocked:
            entry.blocked = blocked
        else:
            self._make_ready(entry)

    async def wait_capacity(self, n: int = 1) -> None:
        """Return once ``capacity() >= n``. Event-driven; raises ValueError if it never can."""
        most = min(self._max_pending, self._per_key)
        if n > most:
            raise ValueError(f"wait_capacity({n}) would never return: capacity is at most {most}")
        while self.capacity() < n:
            waiter = (n, asyncio.get_running_loop().create_future())
            self._capacity_waiters.append(waiter)
            try:
                await waiter[1]
            finally:
                self._capacity_waiters.remove(waiter)

    # The runtime's stop path passes its grace period here; a parameter reads better there
    # than an asyncio.timeout block around a call that must report whether it drained.
    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running; False if ``timeout`` seconds ran out first.

        Stuck handlers count as running (see the module doc). ``timeout`` None waits forever.
        """
        if not self._queued and not self._running:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(fut)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return False
        finally:
            self._idle_waiters.remove(fut)
        return True

    async def cancel_all(self) -> None:
        """Drop every queued item and cancel every running handler and hook, for a fast exit.

        Nothing dropped or cancelled is reported to any hook. Waits up to ``cancel_grace``
        seconds for the cancelled tasks to end and logs those that do not; they keep their
        slots until they end. The scheduler stays usable afterwards.
        """
        for lane in self._lanes.values():
            for entry in lane:
                entry.state = _DROPPED
        for entry in self._ready:
            entry.state = _DROPPED
        self._lanes.clear()
        self._ready.clear()
        self._queued = 0
        self._lane_lens = [0] * (self._per_key + 2)
        self._longest = 0
        me = asyncio.current_task()
        waiting: list[asyncio.Future[Any]] = []
        for live in (self._tasks, self._hooks):
            for task, entry in list(live.items()):
                entry.state = _DROPPED
                if entry.timer is not None:
                    entry.timer.cancel()
                    entry.timer = None
                task.cancel("tgrunner scheduler: cancel_all")
                if task is not me:
                    waiting.append(task)
        self._wake()
        if not waiting:
            return
        _, left = await asyncio.wait(waiting, timeout=self._grace)
        if left:
            log.warning(
                "%d cancelled handler(s) still run after %g s; they ignore "
                "cancellation and are left behind",
                len(left),
                self._grace,
            )

    # -- the life of an item ----------------------------------------------------------------

    def _make_ready(self, entry: _Entry) -> None:
        if self._running < self._concurrency and not self._ready:
            self._start(entry)
        else:
            self._ready.append(entry)

    def _start(self, entry: _Entry) -> None:
        self._queued -= 1
        self._running += 1
        entry.state = _RUNNING
        entry.refs = 1
        loop = asyncio.get_running_loop()
        if entry.error is None:
            try:
                aw: Any = self._handler(entry.item)
            except Exception as exc:
                aw = _raise(exc)
        else:
            aw = _raise(entry.error)
        task: asyncio.Future[Any]
        try:
            task = loop.create_task(aw)
        except TypeError:  # not a coroutine: a Future, another awaitable, or a mistake
            task = self._wrap(loop, aw)
        task.add_done_callback(self._task_done)
        self._tasks[task] = entry
        entry.task = task
        if self._timeout is not None:
            entry.timer = loop.call_later(self._timeout, self._expire, entry)

    @staticmethod
    def _wrap(loop: asyncio.AbstractEventLoop, aw: Any) -> asyncio.Future[Any]:
        if inspect.isawaitable(aw):
            return asyncio.ensure_future(aw, loop=loop)
        return loop.create_task(
            _raise(
                TypeError(
                    f"the handler returned {_repr.repr(aw)}, not an awaitable; "
                    "make it an async function"
                )
            )
        )

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        entry = self._tasks.pop(task)
        state = entry.state
        if state is _RUNNING or state is _CANCELLING:
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
            if task.cancelled():
                exc: BaseException | None = None
                if state is _RUNNING:
                    exc = asyncio.CancelledError("the handler was cancelled, not by its time limit")
            else:
                exc = task.exception()
            if state is _CANCELLING:
                if exc is not None:
                    log.warning(
                        "handler on %s raised while being cancelled for its time limit",
                        _describe(entry.item),
                        exc_info=exc,
                    )
                self._timed_out(entry)
            elif exc is None:
                self._complete(entry)
            else:
                entry.state = _HOOKS
                if self._on_error is None:
                    log.error("handler failed on %s", _describe(entry.item), exc_info=exc)
                    self._complete(entry)
                else:
                    self._call_hook(entry, self._on_error, (entry.item, exc), "on_error")
        else:
            # Stuck (already reported) or dropped: only the slot is left to give back.
            exc = None if task.cancelled() else task.exception()  # retrieved, so never logged
            if state is not _DROPPED:
                log.info("stuck handler on %s has ended", _describe(entry.item), exc_info=exc)
        self._unref(entry)

    def _expire(self, entry: _Entry) -> None:
        entry.timer = None
        task = entry.task
        if entry.state is not _RUNNING or task is None or task.done():
            return  # it finished in this very loop iteration
        entry.state = _CANCELLING
        task.cancel(f"tgrunner scheduler: time limit of {self._timeout} s")
        entry.timer = asyncio.get_running_loop().call_later(self._grace, self._give_up, entry)

    def _give_up(self, entry: _Entry) -> None:
        entry.timer = None
        task = entry.task
        if entry.state is not _CANCELLING or task is None or task.done():
            return
        entry.state = _STUCK
        log.warning(
            "handler on %s ignored cancellation for %g s after its time limit of %g s; its "
            "keys are released and it runs on detached, holding one of %d slots (%d stuck)",
            _describe(entry.item),
            self._grace,
            self._timeout,
            self._concurrency,
            self.stuck,
        )
        if self._on_stuck is not None:
            try:
                self._on_stuck(entry.item)
            except Exception:
                log.exception("the on_stuck hook failed on %s", _describe(entry.item))
        self._timed_out(entry)

    def _timed_out(self, entry: _Entry) -> None:
        if entry.state is not _STUCK:
            entry.state = _HOOKS
        if self._on_timeout is None:
            if entry.state is _HOOKS:  # a stuck one was just logged
                log.warning(
                    "handler on %s hit its time limit of %g s and was cancelled",
                    _describe(entry.item),
                    self._timeout,
                )
            self._complete(entry)
        else:
            self._call_hook(entry, self._on_timeout, (entry.item,), "on_timeout")

    def _call_hook(
        self, entry: _Entry, hook: Callable[..., Any], args: tuple[Any, ...], name: str
    ) -> None:
        try:
            result = hook(*args)
        except Exception:
            log.exception("the %s hook failed on %s", name, _describe(entry.item))
            result = None
        if result is None or not inspect.isawaitable(result):
            self._complete(entry)
            return
        entry.refs += 1
        task = asyncio.get_running_loop().create_task(self._await_hook(entry, result, name))
        self._hooks[task] = entry

    async def _await_hook(self, entry: _Entry, result: Awaitable[Any], name: str) -> None:
        try:
            await result
        except Exception:
            log.exception("the %s hook failed on %s", name, _describe(entry.item))
        finally:
            me = asyncio.current_task()
            if me is not None:
                self._hooks.pop(me, None)
            if entry.state is not _DROPPED:
                self._complete(entry)
            self._unref(entry)

    def _complete(self, entry: _Entry) -> None:
        """Report the item done and release its keys; the slot is given back by _unref."""
        entry.state = _DONE
        if self._on_done is not None:
            try:
                self._on_done(entry.item)
            except Exception:
                log.exception("the on_done hook failed on %s", _describe(entry.item))
        lanes = self._lanes
        lens = self._lane_lens
        for k in entry.keys:
            lane = lanes[k]
            lane.popleft()  # this entry: it could only run at the head of each of its lanes
            n = len(lane)
            lens[n + 1] -= 1
            lens[n] += 1
            if n + 1 == self._longest and not lens[n + 1]:
                self._longest = n
            if n:
                head = lane[0]
                head.blocked -= 1
                if not head.blocked:
                    self._make_ready(head)
            else:
                del lanes[k]
        if self._capacity_waiters:
            self._wake()

    def _unref(self, entry: _Entry) -> None:
        entry.refs -= 1
        if entry.refs:
            return
        self._running -= 1
        ready = self._ready
        while ready and self._running < self._concurrency:
            self._start(ready.popleft())
        if self._capacity_waiters or self._idle_waiters:
            self._wake()

    def _wake(self) -> None:
        if self._capacity_waiters:
            cap = self.capacity()
            for n, fut in self._capacity_waiters:
                if cap >= n and not fut.done():
                    fut.set_result(None)
        if self._idle_waiters and not self._queued and not self._running:
            for fut in self._idle_waiters:
                if not fut.done():
                    fut.set_result(None)
