"""``@task``: a function a job worker runs, queued from a handler with ``enqueue``.

::

    from tgrunner.jobs import task

    @task(retries=3, timeout=120)
    def render(prompt: str) -> str:       # sync or async; a str is sent as a text reply
        ...

    await render.enqueue(prompt, reply_to=message)   # in a native, aiogram or PTB handler

- **By path.** A worker imports the function by its path, ``"module:qualname"``, so it must be
  defined at the top level of an importable module: a lambda, a closure or a function defined
  in another function is refused at ``@task`` time. A function of a script run as
  ``python bot.py`` is found as ``bot:name`` (the worker imports ``bot``, so the script must
  start the bot under ``if __name__ == "__main__":``).
- **Arguments** are pickled at :meth:`Task.enqueue`; what does not pickle is refused there,
  not in the worker.
- **A JobContext parameter.** A function with a parameter annotated
  :class:`~tgrunner.jobs.context.JobContext` gets the job's context in it (the worker passes
  it; ``enqueue`` does not take it).
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from tgrunner._import_path import check_importable, import_path
from tgrunner._import_path import function_path as _function_path
from tgrunner.errors import JobError
from tgrunner.jobs.handle import Job
from tgrunner.jobs.queue import JobRequest, current_queue
from tgrunner.jobs.reply import reply_target

__all__ = ["DEFAULT_FAILURE_MESSAGE", "Task", "function_path", "resolve_task", "task"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_FAILURE_MESSAGE = "⚠️ Sorry, that did not work out. Please try again later."
"""What the user is told when a job fails after its last retry, unless the task says otherwise."""

_RESERVED = frozenset({"reply_to", "status_message"})


_WHAT = "a job's function"


def function_path(fn: Callable[..., Any]) -> str:
    """``"module:qualname"`` of ``fn``, by which a worker imports it; JobError when there is no
    such path (a lambda, a closure, a function defined in another function, a builtin)."""
    return _function_path(fn, what=_WHAT, error=JobError)


def resolve_task(path: str) -> Task[..., Any]:
    """Import the task named by ``"module:qualname"``; JobError when it is not there or is
    not a task (the worker calls this, and ``enqueue`` does once per task, to check)."""
    obj = import_path(path, what="the job", error=JobError)
    if not isinstance(obj, Task):
        raise JobError(
            f"{path} is not a task: decorate it with @tgrunner.jobs.task (the worker runs only "
            "tasks)"
        )
    return obj


def _context_parameter(fn: Callable[..., Any]) -> str | None:
    """The name of ``fn``'s parameter annotated JobContext, or None."""
    for param in inspect.signature(fn).parameters.values():
        note = param.annotation
        text = note if isinstance(note, str) else getattr(note, "__name__", "")
        if text == "JobContext" or text.endswith(".JobContext"):
            return param.name
    return None


class Task(Generic[P, R]):
    """A function made a task by :func:`task`. Calling it runs the function here, as before;
    :meth:`enqueue` queues a run by a job worker.

    ``path``: ``"module:qualname"``; ``retries``, ``timeout``, ``backoff`` and
    ``failure_message`` as given to :func:`task`; ``context_parameter``: the name of the
    parameter that gets the :class:`~tgrunner.jobs.context.JobContext`, or None.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        retries: int,
        timeout: float | None,
        backoff: float,
        failure_message: str | None,
    ) -> None:
        if retries < 0:
            raise JobError(f"@task(retries=...) must be 0 or more, not {retries}")
        if timeout is not None and not timeout > 0:
            raise JobError(f"@task(timeout=...) must be above 0 seconds, or None; not {timeout}")
        if not backoff >= 0:
            raise JobError(f"@task(backoff=...) must be 0 or more seconds, not {backoff}")
        self.fn = fn
        self.path = function_path(fn)
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.failure_message = failure_message
        self.context_parameter = _context_parameter(fn)
        self.is_async = inspect.iscoroutinefunction(fn)
        self._checked = False
        self.__name__ = getattr(fn, "__name__", "task")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<task {self.path}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def retry_delay(self, attempt: int) -> float:
        """Seconds before run ``attempt + 1`` (``attempt`` counts from 0): ``backoff`` doubled
        per failed run, at most 300."""
        return float(min(self.backoff * 2**attempt, 300.0))

    def _check_path(self) -> None:
        if self._checked:
            return
        # A worker imports the task by its path: it must lead back to this task.
        check_importable(self, self.path, what=repr(self), error=JobError)
        self._checked = True

    async def enqueue(
        self,
        *args: Any,
        reply_to: Any = None,
        status_message: Any = None,
        **kwargs: Any,
    ) -> Job:
        """Queue a run of the function with these arguments and return its :class:`Job`.

        - ``reply_to``: the message the result answers (a native ``ctx.message`` dict or
          ``Context``, an aiogram ``Message``, a PTB ``Message``), default None: no reply. The
          reply uses ``reply_parameters`` (with ``allow_sending_without_reply``), the message's
          topic and business connection.
        - ``status_message``: a message the bot sent ("⏳ Processing…") to edit into the
          result (and into progress), instead of sending a new message; default None.

        Raises :class:`~tgrunner.errors.JobError` when the arguments do not pickle, the
        function cannot be imported by path, or no queue is open in this process.
        """
        self._check_path()
        if self.context_parameter in kwargs:
            raise JobError(
                f"{self.path}: {self.context_parameter!r} is the job's context, given by the "
                "worker; do not pass it to enqueue"
            )
        try:
            payload = pickle.dumps((args, kwargs), protocol=5)
        except Exception as exc:
            raise JobError(
                f"the arguments of {self.path} cannot be serialised ({type(exc).__name__}: "
                f"{exc}): pass plain data (str, numbers, lists, dicts, dataclasses of a "
                "module), not open files, sockets, lambdas or bots"
            ) from None
        target = reply_target(reply_to, status_message)
        queue = current_queue()
        job_id = await queue.enqueue(
            JobRequest(
                function=self.path,
                payload=payload,
                retries=self.retries,
                timeout=self.timeout,
                reply_to=target,
            )
        )
        return Job(job_id, queue)


def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    retries: int = 0,
    timeout: float | None = None,
    backoff: float = 1.0,
    failure_message: str | None = DEFAULT_FAILURE_MESSAGE,
) -> Any:
    """Make ``fn`` a task a job worker runs: ``@task`` or ``@task(...)``.

    - ``retries``: failed runs run again (default 0), ``backoff`` seconds after the first
      failure (default 1), doubled each time up to 300.
    - ``timeout``: seconds a run may take (default None: no limit). An async function is
      cancelled at it; a sync one's worker process is replaced, as a thread cannot be stopped.
    - ``failure_message``: what the user is told when the job fails after its last retry
      (default :data:`DEFAULT_FAILURE_MESSAGE`; None: tell nothing).

    What the function returns is the reply: a ``str`` is sent as text, a
    :class:`~tgrunner.jobs.reply.Reply` as what it describes, None sends nothing.
    """

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        return Task(
            f, retries=retries, timeout=timeout, backoff=backoff, failure_message=failure_message
        )

    return wrap if fn is None else wrap(fn)
