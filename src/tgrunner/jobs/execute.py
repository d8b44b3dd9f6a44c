"""Running one claimed job, whatever the backend: :func:`execute`.

1. **Find the task** (:func:`~tgrunner.jobs.task.resolve_task`) and **unpickle** its
   arguments. Either failing fails the job for good (no retry would help) with an error that
   says so, and the user gets the default failure message.
2. **Call it**: an async function on the worker's loop, a sync one in a thread of its own;
   a parameter annotated ``JobContext`` gets the :class:`~tgrunner.jobs.context.JobContext`.
3. **Time limit** (the task's ``timeout``): an async run is cancelled at it. A sync run's
   thread cannot be stopped: the failure is recorded, and the outcome is ``stuck``, telling
   the worker to take no more jobs and exit to be replaced (exit code
   :data:`~tgrunner.jobs.worker.EXIT_REPLACE`). So is an async run that ignores its
   cancellation for :data:`CANCEL_GRACE` seconds.
4. **Success**: the result is pickled (one that does not pickle is kept as None, with a
   warning; the reply is still sent), its reply sent (:mod:`tgrunner.jobs.delivery`), and the
   job finished with its reply recorded, in one write.
5. **Failure** (the function raised, timed out, or returned something that is not a reply):
   with retries left, the job is scheduled again after ``task.retry_delay(attempts)``; at the
   last try, the task's ``failure_message`` is sent (None: nothing), the job failed with its
   reply recorded, and the failure hooks called (:func:`on_failure`). Both are logged, with
   the traceback.
6. **A lost lease** (the worker's renewal found another owner): nothing is sent or recorded.

Failure hooks are registered in the worker process with :func:`on_failure` (usually at the
top of the module that defines the tasks, which the worker imports)::

    from tgrunner.jobs import on_failure

    @on_failure
    async def alert(job_id: str, task: str, error: BaseException) -> None:
        ...

A hook is called once per job that failed for good, by the worker that recorded it (for a job
failed at its worker's third death, by the worker that sends its failure message: so only for
such a job with a ``reply_to``, which the sweep finds by its owed reply), with
``error`` the exception (:class:`~tgrunner.errors.JobFailed` when there was none, as for a
death or a timeout). A sync hook runs in a thread. A hook has :data:`HOOK_TIMEOUT` seconds;
what it raises is logged, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import pickle
import queue
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from tgrunner.client.bot import Bot
from tgrunner.errors import JobFailed, Unauthorized
from tgrunner.jobs.context import JobContext, Run
from tgrunner.jobs.delivery import Delivery, ReplyPolicy, deliver
from tgrunner.jobs.reply import reply_calls
from tgrunner.jobs.task import DEFAULT_FAILURE_MESSAGE, Task, resolve_task

__all__ = [
    "CANCEL_GRACE",
    "HOOK_TIMEOUT",
    "FailureHook",
    "Outcome",
    "call_failure_hooks",
    "execute",
    "failure_message_of",
    "on_failure",
    "remove_failure_hook",
    "send_reply",
]

log = logging.getLogger(__name__)

CANCEL_GRACE = 1.0
"""Seconds an async run has to end once cancelled at its time limit."""
HOOK_TIMEOUT = 10.0
"""Seconds a failure hook may take."""

FailureHook = Callable[[str, str, BaseException], Awaitable[None] | None]
"""``hook(job_id, task_path, error)``, sync or async."""

_hooks: list[FailureHook] = []


def on_failure(hook: FailureHook) -> FailureHook:
    """Call ``hook(job_id, task_path, error)`` for every job that fails for good in this
    process (see the module doc); returns ``hook``, so it works as a decorator."""
    if not callable(hook):
        raise TypeError(f"on_failure() takes a function, not {type(hook).__name__}")
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def remove_failure_hook(hook: FailureHook) -> None:
    """Stop calling ``hook`` (nothing when it was not registered)."""
    with contextlib.suppress(ValueError):
        _hooks.remove(hook)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: ``state`` ``"finished"``, ``"scheduled"`` (to run again),
    ``"failed"`` or ``"discarded"`` (the lease was lost: nothing recorded); ``error`` (the
    failure's line); ``reply`` (how its reply or failure message went, or None); ``stuck``
    (a thread or task that outlived its time limit still runs: replace the worker);
    ``retry_in`` (seconds until a scheduled job runs again)."""

    state: Literal["finished", "scheduled", "failed", "discarded"]
    error: str | None = None
    reply: str | None = None
    stuck: bool = False
    retry_in: float | None = None


class _TimedOut(Exception):
    def __init__(self, seconds: float, stuck: bool) -> None:
        super().__init__(f"timed out after {seconds:g} s")
        self.stuck = stuck


class _Final(Exception):
    """A failure no retry can mend (the task cannot be found, the arguments do not load)."""


def failure_message_of(function: str) -> str | None:
    """The failure message of the task at ``function``: its own, or the default when it cannot
    be imported."""
    try:
        return resolve_task(function).failure_message
    except Exception:
        return DEFAULT_FAILURE_MESSAGE


async def execute(run: Run) -> Outcome:
    """Run ``run``'s job to its recorded end (see the module doc). Raises only
    :class:`~tgrunner.errors.Unauthorized` (the token was refused, by a reply or a call of the
    job's own: the job is not recorded) and ``CancelledError``."""
    claim = run.claim
    task: Task[..., Any] | None = None
    stuck = False
    error: BaseException
    try:
        task, args, kwargs = _load(run)
        result = await _call(task, args, kwargs, claim.timeout)
        reply_calls(result, run.target)  # a result that is no reply fails here, as an error
    except (asyncio.CancelledError, Unauthorized):
        raise  # a stop; a revoked token, with which no job can reply: the worker stops
    except _TimedOut as exc:
        stuck = exc.stuck
        error = exc
    except Exception as exc:
        error = exc
    else:
        return await _succeed(run, result)
    return await _fail(run, task, error, stuck)


_found: dict[str, Task[..., Any]] = {}  # the tasks found, by path


def _load(run: Run) -> tuple[Task[..., Any], tuple[Any, ...], dict[str, Any]]:
    claim = run.claim
    task = _found.get(claim.function)
    if task is None:
        try:
            task = _found[claim.function] = resolve_task(claim.function)
        except Exception as exc:
            raise _Final(f"cannot run {claim.function}: {exc}") from exc
    try:
        args, kwargs = pickle.loads(claim.payload)
    except Exception as exc:
        raise _Final(
            f"the arguments of {claim.function} cannot be loaded here ({type(exc).__name__}: "
            f"{exc}): does the worker run the same code as the bot?"
        ) from exc
    if task.context_parameter is not None:
        kwargs[task.context_parameter] = JobContext(run)
    return task, tuple(args), dict(kwargs)


async def _call(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    if not task.is_async:
        return await _call_in_thread(task.fn, args, kwargs, timeout)
    coro = task.fn(*args, **kwargs)
    if timeout is None:
        return await coro
    job = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({job}, timeout=timeout)
        if job in done:
            return job.result()
        job.cancel()
        done, _ = await asyncio.wait({job}, timeout=CANCEL_GRACE)
        if job in done:
            with contextlib.suppress(BaseException):
                job.result()  # retrieved: no "exception never retrieved" warning
        raise _TimedOut(timeout, stuck=job not in done)
    finally:
        if not job.done():
            job.cancel()


class _Threads:
    """Daemon threads for sync jobs, started as needed and kept for the next job.

    Not a ThreadPoolExecutor: its threads are joined at exit, so a job that outlived its time
    limit (or a stop's grace) would hold the process's exit. A thread stuck in a job is left
    to it; the next job gets another thread.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)
        with self._lock:
            if self._idle:
                self._idle -= 1
                return
        threading.Thread(target=self._serve, name="tgrunner job", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


_threads = _Threads()


async def _call_in_thread(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    """``fn`` in a daemon thread: one that is stuck must not hold the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def body() -> None:
        try:
            outcome = (True, context.run(fn, *args, **kwargs))
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, *outcome)

    _threads.submit(body)
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)
    except TimeoutError:
        raise _TimedOut(timeout or 0.0, stuck=True) from None


async def _succeed(run: Run, result: Any) -> Outcome:
    claim = run.claim
    try:
        blob: bytes | None = pickle.dumps(result, protocol=5)
    except Exception as exc:
        log.warning(
            "job %s (%s): its result (%s) does not pickle (%s: %s); kept as None, and its "
            "reply is sent all the same",
            claim.id,
            claim.function,
            type(result).__name__,
            type(exc).__name__,
            exc,
        )
        blob = None
    run.phase = "replying"
    if not await run.still_held():
        return Outcome("discarded")
    done = await _deliver(run, result)
    if done.status == "stopped":
        return Outcome("discarded", reply=done.status)
    run.phase = "recording"
    ok = await run.source.finish(claim.id, run.owner, blob, reply_sent=True)
    if not ok:
        run.lose("its end could not be recorded")
        return Outcome("discarded", reply=done.status)
    run.recorded = True
    log.debug("job %s (%s) finished; reply %s", claim.id, claim.function, done.status)
    return Outcome("finished", reply=done.status)


async def send_reply(
    bot: Bot,
    result: Any,
    target: dict[str, Any] | None,
    *,
    policy: ReplyPolicy,
    job: str,
    may_send: Callable[[], bool] = lambda: True,
    cut: asyncio.Event | None = None,
) -> Delivery:
    """Send ``result`` to ``target`` (:mod:`tgrunner.jobs.delivery`); a refused edit of the
    status message falls back to a new reply. An undelivered reply is logged, naming ``job``."""
    calls = reply_calls(result, target)
    fallback = None
    if calls and calls[0][0] == "editMessageText" and target is not None:
        fresh = {k: v for k, v in target.items() if k != "status_message_id"}
        fallback = reply_calls(result, fresh)
    done = await deliver(bot, calls, policy=policy, fallback=fallback, may_send=may_send, cut=cut)
    if done.status in ("refused", "unsure", "gave_up"):
        how = {"refused": "refused by Telegram", "unsure": "maybe not delivered",
               "gave_up": "given up after its retries"}[done.status]  # fmt: skip
        log.warning(
            "job %s: its reply was %s (%s); recorded as settled, not sent again",
            job,
            how,
            done.error,
        )
    return done


def _deliver(run: Run, result: Any) -> Awaitable[Delivery]:
    return send_reply(
        run.bot,
        result,
        run.target,
        policy=run.policy,
        job=f"{run.claim.id} ({run.claim.function})",
        may_send=run.may_send,
        cut=run.cut,
    )


async def _fail(
    run: Run, task: Task[..., Any] | None, error: BaseException, stuck: bool
) -> Outcome:
    claim = run.claim
    line = str(error) if isinstance(error, _TimedOut | _Final) else _line(error)
    final = task is None or isinstance(error, _Final) or claim.last_try
    trace = None if isinstance(error, _TimedOut) else error
    if run.lost:
        log.warning("job %s (%s) failed after its lease was lost: %s", claim.id, claim.function,
                    line, exc_info=trace)  # fmt: skip
        return Outcome("discarded", error=line, stuck=stuck)
    if not final:
        assert task is not None
        delay = task.retry_delay(claim.attempts)
        log.warning("job %s (%s) failed (try %d of %d): %s; running it again in %g s",
                    claim.id, claim.function, claim.attempts + 1, claim.retries + 1, line,
                    delay, exc_info=trace)  # fmt: skip
        ok = await run.source.fail(claim.id, run.owner, line, retry_delay=delay, reply_sent=False)
        if not ok:
            run.lose("its failure could not be recorded")
            return Outcome("discarded", error=line, stuck=stuck)
        run.recorded = True
        return Outcome("scheduled", error=line, stuck=stuck, retry_in=delay)
    log.error("job %s (%s) failed for good (try %d of %d): %s", claim.id, claim.function,
              claim.attempts + 1, claim.retries + 1, line, exc_info=trace)  # fmt: skip
    message = task.failure_message if task is not None else DEFAULT_FAILURE_MESSAGE
    run.phase = "replying"
    if not await run.still_held():
        return Outcome("discarded", error=line, stuck=stuck)
    done = await _deliver(run, message)
    if done.status == "stopped":
        return Outcome("discarded", error=line, reply=done.status, stuck=stuck)
    run.phase = "recording"
    ok = await run.source.fail(claim.id, run.owner, line, retry_delay=None, reply_sent=True)
    if not ok:
        run.lose("its failure could not be recorded")
        return Outcome("discarded", error=line, reply=done.status, stuck=stuck)
    run.recorded = True
    private = isinstance(error, _TimedOut | _Final)
    hook_error = JobFailed(claim.id, line) if private else error
    await call_failure_hooks(claim.id, claim.function, hook_error)
    return Outcome("failed", error=line, reply=done.status, stuck=stuck)


def _line(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def call_failure_hooks(job_id: str, function: str, error: BaseException) -> None:
    """Call every hook registered with :func:`on_failure`, each within :data:`HOOK_TIMEOUT`;
    what one raises is logged."""
    for hook in list(_hooks):
        name = getattr(hook, "__qualname__", repr(hook))
        try:
            async with asyncio.timeout(HOOK_TIMEOUT):
                if inspect.iscoroutinefunction(hook):
                    await hook(job_id, function, error)
                else:
                    value = await asyncio.to_thread(hook, job_id, function, error)
                    if inspect.isawaitable(value):
                        await value
        except TimeoutError:
            log.error("failure hook %s took more than %g s (job %s)", name, HOOK_TIMEOUT, job_id)
        except Exception:
            log.exception("failure hook %s raised (job %s)", name, job_id)
