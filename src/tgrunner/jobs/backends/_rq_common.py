"""What the RQ backend's two sides share: the URL's options, the key names, a job's hash
written and read back, and calls retried with backoff while Redis is unreachable.

A tgrunner job is a real RQ job (``rq:job:ID``): RQ's own fields, as ``Job.to_dict`` writes
them, and tgrunner's beside them, named ``tgrunner_*`` (the task's path, retries, attempts,
deaths, the reply target, whether the reply was sent, the lease owner). They are plain hash
fields, not ``job.meta`` (which RQ pickles), so the Lua scripts change them in the same step as
the job's status; ``job.meta`` is left to the user.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import pickle
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.defaults import DEFAULT_FAILURE_TTL, DEFAULT_RESULT_TTL, RQ_KEY_PREFIX
from rq.utils import get_call_string, now, utcformat, utcparse

from tgrunner._redis_url import split_query
from tgrunner.errors import ConfigError, QueueUnavailable
from tgrunner.jobs.queue import JobInfo, JobRequest
from tgrunner.jobs.source import Claim
from tgrunner.jobs.store import JobState

__all__ = [
    "DEFAULT_QUEUE",
    "DEFAULT_RETRY_FOR",
    "ENTRY",
    "FAILURE_TTL",
    "LEASE_GRACE",
    "RESULT_TTL",
    "RQ_TIMEOUT_MARGIN",
    "STATE_OF",
    "UNREACHABLE",
    "Outage",
    "QueueKeys",
    "RQOptions",
    "b64z",
    "claim_of",
    "connect",
    "info_of",
    "job_fields",
    "payload_of",
    "retrying",
]

log = logging.getLogger("tgrunner.jobs.rq")

T = TypeVar("T")

DEFAULT_QUEUE = "tgrunner"
"""The RQ queue tgrunner's jobs go to, unless the URL says ``?queue=NAME``."""
DEFAULT_RETRY_FOR = 10.0
"""Seconds a call is retried with backoff while Redis is unreachable, unless ``?retry_for=``."""
LEASE_GRACE = 60.0
"""Seconds the started registry's score lies past a job's lease: RQ's own cleanup of that
registry (``rq info`` runs it) leaves the job to tgrunner's workers, which see the lease end
first, and takes it only when no tgrunner worker looked for a minute."""
ENTRY = "tgrunner.jobs.backends.rq_entry.perform"
"""The function an RQ job of tgrunner's names: a plain ``rq worker`` runs it, and it runs the
task and sends the reply (:mod:`tgrunner.jobs.backends.rq_entry`)."""
RESULT_TTL = DEFAULT_RESULT_TTL
"""RQ's default seconds a finished job is kept (500)."""
FAILURE_TTL = DEFAULT_FAILURE_TTL
"""RQ's default seconds a failed (or canceled) job is kept (one year)."""
RQ_TIMEOUT_MARGIN = 30
"""Seconds RQ's own timeout of a job lies past its task's: a backstop behind the entry
function's limit, which then still has time to send the failure message."""
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)
"""The errors that mean Redis could not be reached (retried), not that a call was wrong."""

STATE_OF: Mapping[str, JobState] = {
    "created": "queued",
    "queued": "queued",
    "ready_to_enqueue": "queued",
    "deferred": "scheduled",
    "scheduled": "scheduled",
    "rate_limited": "scheduled",
    "started": "started",
    "finished": "finished",
    "failed": "failed",
    "stopped": "canceled",
    "canceled": "canceled",
}
"""RQ's job statuses as tgrunner's states: waiting on a dependency or a rate limit is
scheduled, a job stopped by ``rq`` is canceled."""

_OURS = ("queue", "retry_for", "result_ttl", "failure_ttl")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _ttl(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0 or value < -1:
        raise ConfigError(f"?{name}={text}: give whole seconds above 0, or -1 (kept for ever)")
    return value


@dataclass(frozen=True, slots=True)
class RQOptions:
    """The RQ backend's URL read: ``redis://[:PASSWORD@]HOST:PORT/DB?OPTIONS`` (also
    ``rediss://`` and ``unix://PATH?db=N``).

    Options of tgrunner's, taken out of the URL before redis-py sees it:

    - ``queue``: the RQ queue's name (default ``tgrunner``); a plain ``rq worker NAME`` serves
      the same jobs.
    - ``retry_for``: seconds a call is retried with backoff while Redis is unreachable
      (default 10), before :class:`~tgrunner.errors.QueueUnavailable`.
    - ``result_ttl`` / ``failure_ttl``: seconds a finished / failed job is kept (default RQ's:
      500, and one year); -1 keeps them for ever.

    Every other option is redis-py's (``socket_timeout``, ``ssl_cert_reqs``…).
    ``safe_url`` is the URL with its password hidden, for messages.
    """

    redis_url: str
    safe_url: str
    queue: str = DEFAULT_QUEUE
    retry_for: float = DEFAULT_RETRY_FOR
    result_ttl: int | None = None
    failure_ttl: int | None = None

    @classmethod
    def from_url(cls, url: str) -> RQOptions:
        """Read ``url``; ConfigError naming the option that is wrong or unknown."""
        parts = urlsplit(url)
        ours, theirs = split_query(parts.query, _OURS, "--jobs")
        queue = ours.get("queue", DEFAULT_QUEUE)
        if not _QUEUE_NAME.fullmatch(queue):
            raise ConfigError(
                f"?queue={queue!r}: an RQ queue name of letters, digits, '_', '.' and '-'"
            )
        try:
            retry_for = float(ours.get("retry_for", DEFAULT_RETRY_FOR))
        except ValueError:
            retry_for = math.nan
        if not (math.isfinite(retry_for) and retry_for >= 0):
            raise ConfigError(f"?retry_for={ours['retry_for']}: give seconds, 0 or more")
        redis_url = urlunsplit(parts._replace(query=urlencode(theirs)))
        return cls(
            redis_url=redis_url,
            safe_url=_hide_password(urlunsplit(parts._replace(query=urlencode(theirs)))),
            queue=queue,
            retry_for=retry_for,
            result_ttl=_ttl("result_ttl", ours["result_ttl"]) if "result_ttl" in ours else None,
            failure_ttl=_ttl("failure_ttl", ours["failure_ttl"]) if "failure_ttl" in ours else None,
        )


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = quote(parts.username or "", safe="")
        netloc = f"{user}:***@{netloc.rpartition('@')[2]}"
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))


def connect(options: RQOptions, *, blocking: bool = False) -> aredis.Redis:
    """A client for ``options`` (it connects at its first call). redis-py's own retries are
    off: a call is retried by :func:`retrying`, which knows which calls are safe to repeat.
    ``blocking``: for BLMOVE, with no socket timeout of its own (the URL may still set one)."""
    try:
        return aredis.Redis.from_url(
            options.redis_url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2.0,
            socket_timeout=None if blocking else 10.0,
            single_connection_client=blocking,
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--jobs {options.safe_url}: {exc}") from None


class QueueKeys:
    """The Redis keys of one RQ queue (RQ's names, under ``RQ_KEY_PREFIX``, default ``rq``),
    and tgrunner's own: the leases of started jobs and the jobs whose reply is owed."""

    __slots__ = ("all", "claims", "deferred", "job", "queue", "results")

    def __init__(self, name: str) -> None:
        p = RQ_KEY_PREFIX
        self.queue = f"{p}:queue:{name}"
        self.job = f"{p}:job:"
        self.results = f"{p}:results:"
        self.claims = f"{p}:tgrunner:claim:"
        self.deferred = f"{p}:deferred:{name}"
        self.all = [
            self.queue,
            f"{p}:wip:{name}",
            f"{p}:scheduled:{name}",
            f"{p}:tgrunner:leases:{name}",
            f"{p}:failed:{name}",
            f"{p}:finished:{name}",
            f"{p}:canceled:{name}",
            f"{p}:tgrunner:unreplied:{name}",
            f"{p}:queues",
        ]
        """In the order of :data:`~tgrunner.jobs.backends._rq_scripts.QUEUE_KEYS`."""

    def prelude(self, worker: str) -> list[str]:
        """The four leading arguments of every script."""
        return [self.job, self.results, utcformat(now()), worker]


def b64z(text: str) -> tuple[bytes, str]:
    """``text`` zlib'd (a job's ``exc_info``) and base64'd zlib (a Result's ``exc_string``)."""
    packed = zlib.compress(text.encode())
    return packed, base64.b64encode(packed).decode()


def _describe(function: str, payload: bytes) -> str:
    """The call as rq-dashboard shows it, ``bot.render('a cat')``: the task's own path and
    arguments, not the entry function's (the arguments were just pickled in this process)."""
    try:
        args, kwargs = pickle.loads(payload)
        text = get_call_string(function.replace(":", "."), args, kwargs, max_length=75)
    except Exception:  # a description is for people; never let it fail an enqueue
        text = None
    return text or f"{function.replace(':', '.')}(...)"


def job_fields(job_id: str, request: JobRequest, options: RQOptions) -> list[Any]:
    """The fields of a new queued job that depend on it, as field, value, field, value…: RQ's
    (the entry function's call in ``data``, so a plain ``rq worker`` runs it), then
    tgrunner's. The enqueue script writes the fields every new job has alike (its times,
    ``status``, the empty callback names…), as ``Job.to_dict`` does."""
    data = zlib.compress(
        pickle.dumps((ENTRY, None, (request.function, request.payload), {}), protocol=5)
    )
    timeout = -1 if request.timeout is None else math.ceil(request.timeout) + RQ_TIMEOUT_MARGIN
    fields: dict[str, Any] = {
        "data": data,
        "retries_left": request.retries,
        "origin": options.queue,
        "description": _describe(request.function, request.payload),
        "timeout": timeout,
        "tgrunner_function": request.function,
        "tgrunner_retries": request.retries,
        "tgrunner_timeout": "" if request.timeout is None else repr(float(request.timeout)),
    }
    if options.result_ttl is not None:
        fields["result_ttl"] = options.result_ttl
    if options.failure_ttl is not None:
        fields["failure_ttl"] = options.failure_ttl
    if request.reply_to is not None:
        fields["tgrunner_reply_to"] = orjson.dumps(request.reply_to)
    return [item for pair in fields.items() for item in pair]


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode()


def _int(value: bytes | None) -> int:
    return int(value) if value else 0


def _reply_to(target: bytes | None, status_message: bytes | None) -> dict[str, Any] | None:
    if not target:
        return None
    reply: dict[str, Any] = orjson.loads(target)
    if status_message:
        reply["status_message_id"] = int(status_message)
    return reply


def payload_of(data: bytes) -> bytes:
    """The pickled ``(args, kwargs)`` inside a job's ``data`` (the entry function's call)."""
    try:
        data = zlib.decompress(data)
    except zlib.error:
        pass  # RQ stores data uncompressed too
    _func, _instance, args, _kwargs = pickle.loads(data)
    payload: bytes = args[1]
    return payload


def claim_of(job_id: str, values: Iterable[bytes | None]) -> Claim:
    """A claim from the job's fields in the order of
    :data:`~tgrunner.jobs.backends._rq_scripts.CLAIM_FIELDS`."""
    function, data, attempts, retries, deaths, timeout, target, status = values
    return Claim(
        id=job_id,
        function=_text(function),
        payload=payload_of(data or b""),
        attempts=_int(attempts),
        retries=_int(retries),
        deaths=_int(deaths),
        timeout=float(timeout) if timeout else None,
        reply_to=_reply_to(target, status),
    )


def _epoch(value: bytes | None) -> float | None:
    return utcparse(value.decode()).timestamp() if value else None


def _error(fields: Mapping[bytes, bytes]) -> str | None:
    line = fields.get(b"tgrunner_error")
    if line:
        return line.decode()
    raw = fields.get(b"exc_info")
    if not raw:
        return None
    try:
        raw = zlib.decompress(raw)
    except zlib.error:
        pass
    lines = raw.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else None


def info_of(
    job_id: str, fields: Mapping[bytes, bytes], latest: list[tuple[bytes, dict[bytes, bytes]]]
) -> JobInfo:
    """A job from its hash and its latest Result (``XREVRANGE ... COUNT 1``): the pickled
    return value of a successful one, as RQ stores it (base64'd)."""
    status = _text(fields.get(b"status")) or "queued"
    state = STATE_OF.get(status, "queued")
    result: bytes | None = None
    if state == "finished" and latest:
        entry = latest[0][1]
        if entry.get(b"type") == b"1" and entry.get(b"return_value"):
            result = base64.b64decode(entry[b"return_value"])
    function = _text(fields.get(b"tgrunner_function")) or _text(fields.get(b"description"))
    return JobInfo(
        id=job_id,
        function=function,
        state=state,
        attempts=_int(fields.get(b"tgrunner_attempts")),
        enqueued_at=_epoch(fields.get(b"enqueued_at") or fields.get(b"created_at")) or 0.0,
        ended_at=_epoch(fields.get(b"ended_at")),
        result=result,
        error=_error(fields) if state != "finished" else None,
        reply_to=_reply_to(
            fields.get(b"tgrunner_reply_to"), fields.get(b"tgrunner_status_message_id")
        ),
    )


class Outage:
    """One log line when Redis stops answering, one when it answers again: a worker that
    retries every second through an outage does not log a traceback each time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.since: float | None = None

    def failed(self, exc: BaseException) -> None:
        """Record a failed call; log the first of an outage."""
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "the job queue %s is unreachable (%s: %s); retrying with backoff",
                self.url,
                type(exc).__name__,
                exc,
            )

    def answered(self) -> None:
        """Record a call that went through; log the end of an outage."""
        if self.since is not None:
            log.warning(
                "the job queue %s answers again, after %.1f s",
                self.url,
                time.monotonic() - self.since,
            )
            self.since = None


async def retrying(
    call: Callable[[], Awaitable[T]], *, outage: Outage, seconds: float, what: str
) -> T:
    """``await call()``, again with backoff (50 ms doubled up to 1 s) while Redis cannot be
    reached, for ``seconds`` at most; then QueueUnavailable, saying ``what`` failed."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        try:
            result = await call()
        except UNREACHABLE as exc:
            outage.failed(exc)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QueueUnavailable(
                    f"the job queue {outage.url} cannot be reached ({type(exc).__name__}: "
                    f"{exc}); {what} was retried with backoff for {seconds:g} s. Check that "
                    "Redis/Valkey runs there and the URL is right (?retry_for=SECONDS in it "
                    "sets how long to retry)."
                ) from None
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)
            continue
        outage.answered()
        return result
