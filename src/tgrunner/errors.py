"""Every error tgrunner raises, in one place.

The hierarchy::

    TgrunnerError                    base of everything raised on purpose
    ├── ConfigError                  bad settings, import string, token or CLI arguments
    │   └── UserCodeError            the user's module raised while tgrunner imported or called it
    ├── SchedulerFull                submit() past capacity(): wait with wait_capacity()
    │   └── LaneFull                 submit() past lane_room(keys): one key's lane is full
    ├── HandlerError                 a handler raised in a worker process (its error line)
    ├── PoisonUpdate                 an update was in flight at 3 deaths of its worker process
    ├── JobError                     a job cannot be queued: its function or arguments
    │   ├── JobFailed                a job ended failed (its error); raised by ``job.result()``
    │   ├── JobCanceled              a job was canceled before it ran
    │   └── QueueUnavailable         the job queue's backend cannot be reached (after retries)
    ├── StateError                   the state store could not do a read or a transaction
    │   ├── StateConflict            a transaction's keys could not be had (retries used up)
    │   └── StateUnavailable         the state store's backend cannot be reached
    ├── FloodStoreUnavailable        the shared flood buckets (Redis/Valkey, a bucket file) failed
    ├── OffloadError                 an offload() call failed in the pool, not in its function
    │   ├── OffloadRefused           fn or its arguments cannot be sent (also a TypeError)
    │   ├── OffloadTimeout           fn ran past its timeout (also a TimeoutError)
    │   └── OffloadCrashed           the pool process died while it ran fn
    ├── BadAnswer                    the Bot API answered with something that is not its answer
    ├── NetworkError                 the Bot API could not be reached or broke the connection
    │   ├── TimedOut                 no answer within the request timeout
    │   └── UnexpectedAnswer         another HTTP server answered (a web page, a proxy's page)
    └── TelegramError                Telegram answered ``ok: false``
        ├── BadRequest       400     a parameter is missing or wrong
        ├── Unauthorized     401     the token is wrong or revoked
        ├── Forbidden        403     the bot was blocked, kicked, or may not write there
        ├── NotFound         404     the method does not exist
        ├── Conflict         409     a webhook is set, or another instance is polling
        ├── RetryAfter       429     flood control: wait ``retry_after`` seconds
        │   └── FloodLimited         tgrunner's flood control gave up waiting: over a bound
        └── ServerError      5xx     Telegram's side failed; retry with backoff

Every Telegram and network error carries the ``method`` that failed; Telegram errors carry the
``error_code``, Telegram's ``description`` and, when Telegram sent them, ``retry_after`` and
``migrate_to_chat_id``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = [
    "BadAnswer",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "FloodLimited",
    "FloodStoreUnavailable",
    "Forbidden",
    "HandlerError",
    "JobCanceled",
    "JobError",
    "JobFailed",
    "LaneFull",
    "NetworkError",
    "NotFound",
    "OffloadCrashed",
    "OffloadError",
    "OffloadRefused",
    "OffloadTimeout",
    "PoisonUpdate",
    "QueueUnavailable",
    "RetryAfter",
    "SchedulerFull",
    "ServerError",
    "StateConflict",
    "StateError",
    "StateUnavailable",
    "TelegramError",
    "TgrunnerError",
    "TimedOut",
    "Unauthorized",
    "UnexpectedAnswer",
    "UserCodeError",
    "telegram_error",
]


class TgrunnerError(Exception):
    """Base class of every error tgrunner raises on purpose."""


class ConfigError(TgrunnerError):
    """The configuration cannot work; the message says what to change."""


class UserCodeError(ConfigError):
    """The user's code raised while tgrunner imported it or called its factory or entry point.

    The message is one line naming what failed; ``traceback`` holds the traceback trimmed to
    the user's own frames (no tgrunner or importlib frames), as text ending in a newline.
    """

    def __init__(self, message: str, traceback: str) -> None:
        super().__init__(message)
        self.traceback = traceback


class SchedulerFull(TgrunnerError):
    """``submit()`` was called while ``capacity()`` was 0; wait with ``wait_capacity()``."""


class LaneFull(SchedulerFull):
    """``submit()`` was called for an item whose ``key`` has a full lane.

    The scheduler has room for other keys. Keep the item out of the scheduler and submit it
    once ``lane_room(keys)`` is above 0, or raise ``max_pending_per_key``.
    """

    def __init__(self, message: str, key: Hashable) -> None:
        super().__init__(message)
        self.key = key


class HandlerError(TgrunnerError):
    """A handler raised in a worker process; the message is its error line (``"ValueError:
    boom"``).

    ``error_type`` is the name of the exception's class. The traceback, as the worker
    formatted it, is this error's ``__cause__``, so a log line with ``exc_info`` shows it.
    """

    def __init__(self, message: str, error_type: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type


class PoisonUpdate(TgrunnerError):
    """An update was being handled at ``deaths`` (3) deaths of its worker process.

    It is not sent to a worker again: quarantine it (set it aside with a log line), as the
    journal does with an update that kills the whole process 3 times.
    """

    def __init__(self, update_id: int | None, deaths: int) -> None:
        super().__init__(
            f"update {update_id} was being handled when its worker process died {deaths} "
            "times; it is set aside (quarantined) and not handled again"
        )
        self.update_id = update_id
        self.deaths = deaths


class JobError(TgrunnerError):
    """A job cannot be queued: its function is not importable by path, or its arguments do not
    serialise. The message says which, and what to change."""


class JobFailed(JobError):
    """The job ended failed: ``job_id`` and ``error`` (the last run's error line, e.g.
    ``"ValueError: bad prompt"``, ``"timed out after 120 s"`` or ``"killed its worker 3
    times"``)."""

    def __init__(self, job_id: str, error: str) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class JobCanceled(JobError):
    """The job was canceled before it ran (``job_id``)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was canceled")
        self.job_id = job_id


class QueueUnavailable(JobError):
    """The job queue's backend (``url``, password hidden) could not be reached, after the
    retries with backoff; nothing was queued."""


class StateError(TgrunnerError):
    """The state store could not do what was asked; nothing of the transaction was written."""


class StateConflict(StateError):
    """A transaction could not get its keys: deadlock or serialization errors past the bounded
    retries, a lock wait past ``lock_timeout``, or a lock lost (its lease ran out while the
    process stalled). Nothing was written; running the transaction again is safe."""


class StateUnavailable(StateError):
    """The state store's backend (``url``, password hidden) cannot be reached or failed.

    Raised at open and during a run; nothing of the failed transaction is visible. When it is
    raised by a commit whose answer was lost, the commit may have happened (all of it or none).
    """


class FloodStoreUnavailable(TgrunnerError):
    """The buckets shared by processes or machines could not answer: their Redis/Valkey
    (``url``, password hidden) cannot be reached or failed, or a machine's bucket file has no
    free slot. The message says which and what to check. A limiter may fall back to its own
    buckets. When the answer to a reservation was lost, its slot may have been taken unused:
    the other callers wait a little longer, never less."""


class OffloadError(TgrunnerError):
    """An :func:`~tgrunner.jobs.offload` call failed because of the pool, not because its
    function raised (that exception is raised as it is): the pool was shut down, or a result,
    an exception or the arguments could not cross between the processes. The message names
    the function."""


class OffloadRefused(OffloadError, TypeError):
    """``offload(fn, ...)`` refused ``fn`` or its arguments before anything was sent: a lambda,
    a function defined inside another one, an async function, or an argument that cannot be
    pickled. The message says which, and what to do."""


class OffloadTimeout(OffloadError, TimeoutError):
    """The offloaded function ran past its ``timeout``; its pool process was killed (SIGKILL)
    and replaced. ``timeout`` is the limit in seconds."""

    def __init__(self, message: str, timeout: float) -> None:
        super().__init__(message)
        self.timeout = timeout


class OffloadCrashed(OffloadError):
    """The pool process died while it ran the function (``os._exit``, a crash in an
    extension, the OOM killer); it was replaced. ``exit_code`` is the process's, negative
    for a signal (-9: SIGKILL), None when unknown."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BadAnswer(TgrunnerError):
    """The server answered, but not as the Bot API does (e.g. updates that are not objects).

    Not retried: a server or proxy that answers this way needs a look, not a loop.
    """

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method


class NetworkError(TgrunnerError):
    """The request did not get an answer from the Bot API server."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method


class TimedOut(NetworkError):
    """The Bot API server did not answer within the request timeout."""


class UnexpectedAnswer(NetworkError):
    """An HTTP server answered, but not with the Bot API's JSON: a web site, or the error page
    of a proxy in between. ``status`` is the HTTP status; the message sums up the body in one
    line (a page's title, or its first words). A 5xx answer is a :class:`ServerError` instead.
    """

    def __init__(self, method: str, message: str, status: int) -> None:
        super().__init__(method, message)
        self.status = status


class TelegramError(TgrunnerError):
    """Telegram answered with ``ok: false``."""

    def __init__(
        self,
        method: str,
        error_code: int,
        description: str,
        *,
        retry_after: float | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(f"{method} failed with {error_code}: {description}")
        self.method = method
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


class BadRequest(TelegramError):
    """400: a parameter is missing or wrong."""


class Unauthorized(TelegramError):
    """401: the token is wrong or was revoked. Get a new one from @BotFather."""


class Forbidden(TelegramError):
    """403: the bot may not act there (blocked by the user, kicked from the chat)."""


class NotFound(TelegramError):
    """404: no such method (check its spelling and the Bot API version of the server)."""


class Conflict(TelegramError):
    """409: a webhook is set while polling, or another instance polls with the same token."""


class RetryAfter(TelegramError):
    """429: flood control. Wait ``retry_after`` seconds before the same kind of call."""


class FloodLimited(RetryAfter):
    """tgrunner's flood control did not send the call: it would have waited longer than its
    bound (``FloodOptions.max_wait``, ``--flood-max-wait``), or its chat already had as many
    calls waiting as it may (``FloodOptions.max_queue``). Nothing reached Telegram.

    ``retry_after`` is the seconds until the chat (or the bulk bucket) may send again, as far
    as the flood control knows; ``error_code`` is 429, so code that handles ``RetryAfter``
    handles this too. Send it later, or raise the bound.
    """

    def __init__(self, method: str, retry_after: float, reason: str) -> None:
        super().__init__(method, 429, reason, retry_after=retry_after)


class ServerError(TelegramError):
    """5xx: Telegram's side failed. Retry with backoff."""


_BY_CODE: dict[int, type[TelegramError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RetryAfter,
}


def telegram_error(method: str, payload: dict[str, Any], status: int = 0) -> TelegramError:
    """Build the right :class:`TelegramError` subclass from an ``ok: false`` envelope."""
    code = int(payload.get("error_code") or status or 0)
    params = payload.get("parameters") or {}
    cls = _BY_CODE.get(code) or (ServerError if code >= 500 else TelegramError)
    return cls(
        method,
        code,
        str(payload.get("description", "")),
        retry_after=params.get("retry_after"),
        migrate_to_chat_id=params.get("migrate_to_chat_id"),
    )
