"""The function every RQ job of tgrunner's names, so that a plain ``rq worker`` runs it.

::

    TGRUNNER_TOKEN=123:abc rq worker --with-scheduler --url redis://127.0.0.1:6379/0 tgrunner

:func:`perform` runs the task as tgrunner's own workers do (:func:`tgrunner.jobs.execute.execute`:
its JobContext, its time limit, its reply or, at the last failure, its failure message) and
sends the reply through the Bot API, with the token of ``TGRUNNER_TOKEN`` (else
``BOT_TOKEN``) and the server of ``TGRUNNER_API_URL`` (default Telegram's). The worker needs
the tasks' modules on its path, as tgrunner's does.

- **What RQ records.** A finished run returns the task's result (RQ stores it); a failed one
  raises :class:`~tgrunner.errors.JobFailed`, and RQ retries the job while it has retries
  left, after the task's backoff (set as the job's ``retry_intervals``; ``--with-scheduler``
  brings scheduled jobs back, as does any tgrunner worker on the queue), else fails it.
- **One reply.** The reply is recorded as sent (``tgrunner_reply_sent``) before RQ records the
  job's end. A run that finds it recorded while RQ recorded no end (its worker was killed in
  between, and RQ's cleanup queued the job again) does not run the task again, and sends
  nothing; a job queued again after its end (rq-dashboard's requeue) runs.
- **Time limits.** RQ's own timeout of the job is the task's plus :data:`RQ_TIMEOUT_MARGIN`,
  a backstop: the limit of :func:`perform` comes first, and sends the failure message.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import pickle
from typing import Any, cast

from rq import get_current_job
from rq.results import Result

from tgrunner.client.bot import DEFAULT_API_URL, Bot
from tgrunner.errors import ConfigError, JobError, JobFailed
from tgrunner.jobs.backends._rq_common import RQ_TIMEOUT_MARGIN, claim_of
from tgrunner.jobs.backends._rq_scripts import CLAIM_FIELDS
from tgrunner.jobs.context import Run
from tgrunner.jobs.delivery import ReplyPolicy
from tgrunner.jobs.execute import execute
from tgrunner.jobs.source import Claim
from tgrunner.jobs.task import resolve_task

__all__ = ["RQ_TIMEOUT_MARGIN", "perform"]

log = logging.getLogger("tgrunner.jobs.rq")


class _Recorder:
    """The :class:`~tgrunner.jobs.source.JobSource` that :func:`execute` reports to under a
    plain rq worker: RQ records the job's end, so this keeps the result and writes only
    tgrunner's fields (the reply record, the error, the attempts, the status message)."""

    def __init__(self, job: Any) -> None:
        self.url = f"rq job {job.id}"
        self._redis = job.connection
        self._key = job.key
        self.result: bytes | None = None
        self.error: str | None = None

    async def _hset(self, mapping: dict[str, Any], attempts: int = 0) -> None:
        def write() -> None:
            with self._redis.pipeline() as pipe:
                if mapping:
                    pipe.hset(self._key, mapping=mapping)
                if attempts:
                    pipe.hincrby(self._key, "tgrunner_attempts", attempts)
                pipe.execute()

        await asyncio.to_thread(write)

    async def claim(self, owner: str, lease: float) -> Claim | None:
        return None

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(timeout)

    async def renew(self, job_id: str, owner: str, lease: float) -> bool:
        return True  # RQ's heartbeat keeps the job

    async def finish(
        self, job_id: str, owner: str, result: bytes | None, *, reply_sent: bool
    ) -> bool:
        self.result = result
        await self._hset({"tgrunner_reply_sent": int(reply_sent)})
        return True

    async def fail(
        self, job_id: str, owner: str, error: str, *, retry_delay: float | None, reply_sent: bool
    ) -> bool:
        self.error = error
        await self._hset({"tgrunner_error": error, "tgrunner_reply_sent": int(reply_sent)}, 1)
        return True

    async def release(self, job_id: str, owner: str) -> bool:
        return False

    async def set_status_message(self, job_id: str, owner: str, message_id: int) -> bool:
        await self._hset({"tgrunner_status_message_id": message_id})
        return True

    async def unreplied(self, limit: int = 100) -> list[Claim]:
        return []

    async def mark_reply_sent(self, job_id: str) -> bool:
        return False

    async def purge(self) -> int:
        return 0

    async def close(self) -> None:
        return None


def _bot() -> Bot:
    token = os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    if not token:
        raise ConfigError(
            "a plain rq worker runs tgrunner's jobs with the bot's token: set TGRUNNER_TOKEN "
            "(or BOT_TOKEN) in its environment, and TGRUNNER_API_URL for a Bot API server "
            "other than Telegram's"
        )
    api_url = os.environ.get("TGRUNNER_API_URL", "").strip() or DEFAULT_API_URL
    return Bot(token.strip(), api_url=api_url)


def _set_backoff(job: Any, claim: Claim) -> None:
    """RQ retries a job after ``retry_intervals[retries - retries_left]`` seconds: the task's
    backoff, written into the job RQ holds (it saves them when it schedules the retry)."""
    try:
        task = resolve_task(claim.function)
    except JobError:
        return  # execute() fails the run for good, saying why
    job.retry_intervals = [math.ceil(task.retry_delay(i)) for i in range(claim.retries)]


async def _ended_before(job: Any) -> bool:
    """Whether an earlier run of ``job`` ended in RQ's records (a Result: RQ writes one at a
    job's end, not at a retry): the job was queued again on purpose (rq-dashboard's requeue),
    not after a death."""
    key = Result.get_key(job.id)
    latest = await asyncio.to_thread(job.connection.xrevrange, key, count=1)
    return bool(latest)


async def perform(function: str, payload: bytes) -> Any:
    """Run the tgrunner task at ``function`` with ``payload`` (its pickled arguments) as the
    current RQ job, and send its reply (see the module doc). Returns the task's result;
    raises JobFailed when the run failed."""
    job = get_current_job()
    if job is None:
        raise JobError("perform() is the entry of tgrunner's RQ jobs; an rq worker calls it")
    fields = ("tgrunner_reply_sent", "retries_left", *CLAIM_FIELDS)
    row = await asyncio.to_thread(job.connection.hmget, job.key, fields)
    sent, left, *values = cast(list[bytes | None], row)
    if sent == b"1" and not await _ended_before(job):
        log.warning(
            "job %s (%s): its reply was sent by an earlier run, whose worker died before RQ "
            "recorded its end; not run again",
            job.id,
            function,
        )
        return None
    found = claim_of(job.id, values)
    attempts = max(0, found.retries - int(left or 0))
    claim = Claim(
        id=job.id,
        function=function,
        payload=payload,
        attempts=attempts,
        retries=found.retries,
        deaths=found.deaths,
        timeout=found.timeout,
        reply_to=found.reply_to,
    )
    _set_backoff(job, claim)
    recorder = _Recorder(job)
    async with _bot() as bot:
        run = Run(
            claim,
            owner=job.worker_name or "rq",
            source=recorder,
            bot=bot,
            lease=math.inf,
            policy=ReplyPolicy(),
            held_until=math.inf,
        )
        outcome = await execute(run)
    if outcome.state == "finished":
        return None if recorder.result is None else pickle.loads(recorder.result)
    if outcome.state == "failed":
        job.retries_left = 0  # failed for good here (its failure message sent): no RQ retry
    raise JobFailed(job.id, outcome.error or recorder.error or "failed")
