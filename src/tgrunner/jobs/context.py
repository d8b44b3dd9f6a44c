"""``JobContext``: what a running job knows of itself, and how it talks to the user as it goes.

A task function with a parameter annotated ``JobContext`` gets one::

    @task(timeout=300)
    async def render(prompt: str, ctx: JobContext) -> Reply:
        await ctx.progress("⏳ 10%")          # edits one status message
        ...
        await ctx.send("Half way there")     # a message of its own, as a reply
        return Reply(photo=png, text=prompt)  # edits (or replaces) the status message

- :meth:`JobContext.progress` edits **one** status message: the ``status_message`` given to
  ``enqueue``, or else a reply sent at the first progress, whose id is recorded with the job,
  so that a run after a worker's death edits the same message. The job's text result then
  edits that message into the result, instead of sending a new one.
- :meth:`JobContext.send` sends a text or a :class:`~tgrunner.jobs.reply.Reply` into the
  reply's chat, as a reply to the message the job answers.
- A sync task runs in a thread: it calls :meth:`~JobContext.progress_sync` and
  :meth:`~JobContext.send_sync` instead, which wait for the event loop to do it.
- Both are retried as replies are (:mod:`tgrunner.jobs.delivery`); a progress that cannot be
  shown is logged, not raised. Once the worker lost the job's lease (another worker runs it
  now) or stops past its grace, they send nothing.

:class:`Run` is the worker's record of one claimed run, shared by the worker, the executor and
the context.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Literal

from tgrunner.client.bot import Bot
from tgrunner.errors import JobError
from tgrunner.jobs.delivery import ReplyPolicy, deliver
from tgrunner.jobs.reply import Reply, progress_call, reply_calls
from tgrunner.jobs.source import Claim, JobSource

__all__ = ["JobContext", "Run"]

log = logging.getLogger(__name__)


class Run:
    """One claimed run of a job in a worker.

    ``target`` is the reply's target (a copy of ``claim.reply_to``, its
    ``status_message_id`` set by a first progress), ``held_until`` the monotonic time up to
    which the lease surely holds, ``lost`` whether it was lost (another worker may run the
    job: never reply, never record), ``released`` whether the worker gave the job back (a stop
    past its grace: send nothing more), ``phase`` ``"running"`` (the function),
    ``"replying"`` or ``"recording"`` (writing its end), ``recorded`` whether its end was
    recorded. ``cut`` is set with ``lost`` or ``released``, to end a wait between sends.
    """

    def __init__(
        self,
        claim: Claim,
        *,
        owner: str,
        source: JobSource,
        bot: Bot,
        lease: float,
        policy: ReplyPolicy,
        held_until: float,
    ) -> None:
        self.claim = claim
        self.owner = owner
        self.source = source
        self.bot = bot
        self.lease = lease
        self.policy = policy
        self.target: dict[str, Any] | None = dict(claim.reply_to) if claim.reply_to else None
        self.held_until = held_until
        self.lost = False
        self.released = False
        self.recorded = False
        self.phase: Literal["running", "replying", "recording"] = "running"
        self.cut = asyncio.Event()
        self.status_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<Run {self.claim.id} of {self.claim.function}>"

    def may_send(self) -> bool:
        """Whether the run may still send (its lease held, not released)."""
        return not (self.lost or self.released)

    def lose(self, why: str) -> None:
        """Mark the lease lost (once), with a warning saying ``why``."""
        if self.lost:
            return
        self.lost = True
        self.cut.set()
        log.warning(
            "job %s (%s): lease lost (%s); another worker may run it: this run will neither "
            "reply nor record its end",
            self.claim.id,
            self.claim.function,
            why,
        )

    def release(self) -> None:
        """Mark the run given back: it sends nothing more."""
        self.released = True
        self.cut.set()

    def renewed(self, at: float) -> None:
        """A renewal sent at monotonic time ``at`` succeeded."""
        self.held_until = max(self.held_until, at + self.lease)

    async def still_held(self, margin: float = 1.0) -> bool:
        """Whether the lease holds for ``margin`` seconds more (default 1), renewing it first
        when it is that close to its end; False once lost."""
        if self.lost:
            return False
        now = time.monotonic()
        if now + margin < self.held_until:
            return True
        try:
            ok = await self.source.renew(self.claim.id, self.owner, self.lease)
        except Exception as exc:
            log.warning("job %s: renewing its lease failed: %s", self.claim.id, exc)
            return time.monotonic() < self.held_until
        if not ok:
            self.lose("the renewal before its reply found it taken")
            return False
        self.renewed(now)
        return True


class JobContext:
    """A running job's context (see the module doc).

    ``job_id``; ``attempt``: this run's number, 1 for the first, counting failed runs (a run
    cut by a worker's death is counted in ``deaths`` instead); ``bot``: the worker's
    :class:`~tgrunner.client.bot.Bot`; ``reply_to``: where the reply goes (``chat_id``,
    ``message_id``…), or None.
    """

    __slots__ = ("_loop", "_run", "_thread")

    def __init__(self, run: Run) -> None:
        self._run = run
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def __repr__(self) -> str:
        return f"<JobContext {self.job_id} attempt {self.attempt}>"

    @property
    def job_id(self) -> str:
        return self._run.claim.id

    @property
    def attempt(self) -> int:
        return self._run.claim.attempts + 1

    @property
    def deaths(self) -> int:
        """Runs of this job cut by its worker's death so far."""
        return self._run.claim.deaths

    @property
    def bot(self) -> Bot:
        return self._run.bot

    @property
    def reply_to(self) -> dict[str, Any] | None:
        target = self._run.target
        return None if target is None else dict(target)

    async def progress(self, text: str) -> None:
        """Show ``text`` in the job's status message (see the module doc); nothing when the
        job has no ``reply_to``. Failures are logged, not raised."""
        run = self._run
        target = run.target
        if target is None:
            log.debug("job %s: progress %r not shown: the job has no reply_to", self.job_id, text)
            return
        async with run.status_lock:
            call = progress_call(text, target)
            fresh = {k: v for k, v in target.items() if k != "status_message_id"}
            done = await deliver(
                run.bot,
                [call],
                policy=run.policy,
                fallback=[progress_call(text, fresh)],
                may_send=run.may_send,
                cut=run.cut,
            )
            if done.status != "sent":
                log.warning(
                    "job %s: progress %r not shown (%s: %s)",
                    self.job_id,
                    text,
                    done.status,
                    done.error,
                )
                return
            message = done.results[0]
            new_id = message.get("message_id") if isinstance(message, dict) else None
            if isinstance(new_id, int) and new_id != target.get("status_message_id"):
                target["status_message_id"] = new_id
                await self._record_status(new_id)

    async def _record_status(self, message_id: int) -> None:
        run = self._run
        try:
            ok = await run.source.set_status_message(run.claim.id, run.owner, message_id)
        except Exception as exc:
            log.warning("job %s: its status message was not recorded: %s", self.job_id, exc)
            return
        if not ok:
            run.lose("recording its status message found it taken")

    async def send(self, message: str | Reply) -> dict[str, Any] | None:
        """Send ``message`` (a text or a :class:`~tgrunner.jobs.reply.Reply`) into the reply's
        chat, as a reply to the message the job answers; return the sent message, or None when
        it could not be sent (logged). JobError when the job has no ``reply_to``."""
        run = self._run
        if run.target is None:
            raise JobError(
                f"job {self.job_id} has no reply_to, so ctx.send() has no chat to send to: "
                "enqueue it with reply_to=message, or send with ctx.bot"
            )
        fresh = {k: v for k, v in run.target.items() if k != "status_message_id"}
        done = await deliver(
            run.bot,
            reply_calls(message, fresh),
            policy=run.policy,
            may_send=run.may_send,
            cut=run.cut,
        )
        if done.status != "sent":
            log.warning("job %s: a message was not sent (%s: %s)", self.job_id, done.status,
                        done.error)  # fmt: skip
            return None
        sent = done.results[0]
        return sent if isinstance(sent, dict) else None

    def _from_thread(self, what: str) -> None:
        if threading.get_ident() == self._thread:
            raise RuntimeError(f"ctx.{what}_sync() is for sync jobs; await ctx.{what}() here")

    def progress_sync(self, text: str) -> None:
        """:meth:`progress`, from a sync job's thread."""
        self._from_thread("progress")
        asyncio.run_coroutine_threadsafe(self.progress(text), self._loop).result()

    def send_sync(self, message: str | Reply) -> dict[str, Any] | None:
        """:meth:`send`, from a sync job's thread."""
        self._from_thread("send")
        return asyncio.run_coroutine_threadsafe(self.send(message), self._loop).result()
