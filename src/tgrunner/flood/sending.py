"""One broadcast's sending loop (:class:`Run`), as :mod:`tgrunner.flood.broadcast` starts it:
a window of concurrent sends, each chat's answer turned into its recipient state, and every
step written to the outbox before the next chats go.

How an answer is taken (:meth:`Run.send`):

- sent → ``sent``, with its ``message_id``;
- 403 (the user blocked the bot, a chat kicked it, a deactivated user) → ``blocked``;
- 400 ``chat not found`` (or ``PEER_ID_INVALID``) → ``missing``; any other 400 → ``failed``,
  with Telegram's words; a group that became a supergroup (``migrate_to_chat_id``) is sent
  to at its new id, once;
- 429 (one the flood limiter gave up on) → ``pending`` again, and no send leaves before its
  ``retry_after``;
- 5xx, or a request that provably did not leave (refused connect) → ``pending`` again, and the
  broadcast backs off: 1 s, doubled up to 30 s, until a send works;
- a network error after which the message may have left → ``failed``: a send is never
  resent blindly;
- 401 (the token was revoked) → the broadcast stops in this process, its chats kept; it
  continues when it is resumed with a good token;
- ``build`` raising, or returning something other than a dict → ``failed``, with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tgrunner.errors import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    ServerError,
    TelegramError,
    Unauthorized,
)
from tgrunner.flood.outbox import Claim, Outbox
from tgrunner.flood.records import (
    BroadcastRecord,
    Progress,
    RecipientState,
    Result,
    describe,
    duration,
)

__all__ = ["Run", "Sender"]

log = logging.getLogger("tgrunner.flood.broadcast")

Sender = Callable[[str, Mapping[str, Any], bool], Awaitable[Any]]
"""``await sender(method, params, paid)``: one broadcast send, paced at the bulk rate (the
paid rate with ``paid``) by the flood limiter; returns the method's result or raises its
:class:`~tgrunner.errors.TelegramError` / :class:`~tgrunner.errors.NetworkError`."""

_BACKOFF_FIRST = 1.0
_BACKOFF_MAX = 30.0
_RATE_SPAN = 10.0  # seconds of steps the rate is measured over


class Run:
    """The sending of one broadcast held by this process (see the module doc).

    ``outbox``, ``sender``: where steps are written and sends go; ``record``, ``claim``,
    ``progress``: the broadcast, this process's hold on it and where it stood; ``build``: the
    function its ``record.build`` names (None for text); ``window``: sends in flight at most;
    ``log_every``: a progress line every that many chats; ``on_end``: called with the run when
    it ends. :attr:`task` ends with the last progress; :attr:`error` is what stopped it early.
    """

    def __init__(
        self,
        outbox: Outbox,
        sender: Sender,
        record: BroadcastRecord,
        claim: Claim,
        progress: Progress,
        *,
        build: Callable[[Any], Any] | None,
        window: int,
        log_every: int,
        on_end: Callable[[Run], None],
    ) -> None:
        self.id = record.id
        self.outbox = outbox
        self.sender = sender
        self.claim = claim
        self.paid = record.paid
        self.base = dict(record.params)
        if record.text is not None:
            self.base["text"] = record.text
        self.build = build
        self.window = window
        self.log_every = log_every
        self.on_end = on_end
        self.progress = progress
        self.state = progress.state
        self.closing = False
        self.error: BaseException | None = None
        self.poked = asyncio.Event()
        self.polls = False  # no doorbell: look at the outbox every second while idle
        self._sends: dict[asyncio.Task[Result], int] = {}
        self._hold_until = 0.0
        self._failures = 0
        self._build_errors = 0
        self._samples: deque[tuple[float, int]] = deque()
        self._rate = 0.0
        self._began = time.monotonic()
        self._logged = progress.finished // log_every
        self.task: asyncio.Task[Progress] = asyncio.get_running_loop().create_task(self._main())

    def __repr__(self) -> str:
        return f"<broadcast {self.id} run, {self.state}, {len(self._sends)} in flight>"

    def abort(self) -> None:
        """Cancel the sends in flight (a stop whose grace ran out): their chats stay inflight
        in the outbox, to be sent again when the broadcast is resumed."""
        for task in self._sends:
            task.cancel()

    # -- the loop ---------------------------------------------------------------------------

    async def _main(self) -> Progress:
        try:
            await self._drive()
        except Exception as exc:  # the outbox failed (a full disk): stop here, keep the rest
            log.error("broadcast %d stopped: %s: %s", self.id, type(exc).__name__, exc)
            self.error = exc
        finally:
            for task in self._sends:
                task.cancel()
            self.claim.release(ended=self.state in ("done", "cancelled"))
            self.on_end(self)
        if isinstance(self.error, Unauthorized):
            log.error(
                "broadcast %d stopped: the bot's token was refused (%s); its %d chats left "
                "are kept, sent when it is resumed with a good token",
                self.id, self.error, self.progress.remaining,
            )  # fmt: skip
        return self.progress

    async def _drive(self) -> None:
        results: list[Result] = []
        while True:
            take = 0
            if (
                self.state == "running"
                and not self.closing
                and self.error is None
                and time.monotonic() >= self._hold_until
            ):
                take = self.window - len(self._sends)
            self.poked.clear()  # a poke from here on ends the next idle wait
            step = await self.outbox.run(
                self.outbox.step, self.id, results, take, rate=self._measure()
            )
            self._report(step.progress)
            for seq, chat_id in step.rows:
                task = asyncio.get_running_loop().create_task(self.send(seq, chat_id))
                self._sends[task] = seq
            if self._sends:
                done, _ = await asyncio.wait(self._sends, return_when=asyncio.FIRST_COMPLETED)
                results = []
                for task in done:
                    del self._sends[task]
                    if not task.cancelled():  # aborted: its chat stays inflight
                        results.append(task.result())
                continue
            if self.error is not None or self.closing or self.state in ("done", "cancelled"):
                return
            await self._idle()

    async def _idle(self) -> None:
        """Wait for a poke (a control change, a stop), or for the end of a hold."""
        timeout: float | None = None
        if self.state == "running":
            timeout = max(0.0, self._hold_until - time.monotonic())
        if self.polls:
            timeout = 1.0 if timeout is None else min(timeout, 1.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.poked.wait()

    def _hold(self, seconds: float) -> None:
        self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    def _back_off(self, why: BaseException) -> None:
        if time.monotonic() < self._hold_until:
            return  # a send that was in flight with the one that began this hold: one failure
        delay = min(_BACKOFF_FIRST * 2**self._failures, _BACKOFF_MAX)
        delay *= 1 + random.random() / 10
        self._failures += 1
        if self._failures == 1 or delay >= _BACKOFF_MAX:
            log.warning("broadcast %d: %s; sending again in %.1f s", self.id, why, delay)
        self._hold(delay)

    # -- one chat ---------------------------------------------------------------------------

    async def _params(self, chat_id: int | str) -> dict[str, Any]:
        params = dict(self.base)
        if self.build is not None:
            extra = self.build(chat_id)
            if inspect.isawaitable(extra):
                extra = await extra
            if not isinstance(extra, Mapping):
                raise TypeError(
                    f"it returned {type(extra).__name__}, not a dict of sendMessage parameters"
                )
            params.update(extra)
        params["chat_id"] = chat_id
        if self.paid:
            params["allow_paid_broadcast"] = True
        return params

    async def send(self, seq: int, chat_id: int | str) -> Result:
        """Send the broadcast to one chat; return how it ended (see the module doc)."""
        try:
            params = await self._params(chat_id)
        except Exception as exc:
            self._build_errors += 1
            if self._build_errors == 1:
                log.warning("broadcast %d: build failed for chat %s", self.id, chat_id,
                            exc_info=exc)  # fmt: skip
            return Result(seq, "failed", error=f"build failed: {type(exc).__name__}: {exc}")
        try:
            try:
                sent = await self.sender("sendMessage", params, self.paid)
            except BadRequest as exc:
                if exc.migrate_to_chat_id is None:
                    raise
                moved = {**params, "chat_id": exc.migrate_to_chat_id}
                sent = await self.sender("sendMessage", moved, self.paid)
        except RetryAfter as exc:
            self._hold(float(exc.retry_after or 1.0))
            return Result(seq, "pending")
        except Forbidden as exc:
            return Result(seq, "blocked", error=exc.description)
        except BadRequest as exc:
            words = exc.description.lower()
            missing = "chat not found" in words or "peer_id_invalid" in words
            state: RecipientState = "missing" if missing else "failed"
            return Result(seq, state, error=exc.description)
        except Unauthorized as exc:
            self.error = exc
            return Result(seq, "pending")
        except ServerError as exc:
            self._back_off(exc)
            return Result(seq, "pending")
        except TelegramError as exc:
            return Result(seq, "failed", error=exc.description)
        except NetworkError as exc:
            if getattr(exc.__cause__, "sent", True):
                return Result(seq, "failed", error=f"not sent again, it may have left: {exc}")
            self._back_off(exc)
            return Result(seq, "pending")
        except Exception as exc:  # BadAnswer, or the sender's own failure
            return Result(seq, "failed", error=f"{type(exc).__name__}: {exc}")
        self._failures = 0
        message_id = sent.get("message_id") if isinstance(sent, dict) else None
        return Result(seq, "sent", message_id=message_id)

    # -- progress ---------------------------------------------------------------------------

    def _measure(self) -> float:
        """Chats done per second over the last steps (about ten seconds of them)."""
        now = time.monotonic()
        samples = self._samples
        samples.append((now, self.progress.finished))
        while len(samples) > 2 and now - samples[0][0] > _RATE_SPAN:
            samples.popleft()
        began, before = samples[0]
        if now - began >= 0.5:
            self._rate = (self.progress.finished - before) / (now - began)
        return self._rate

    def _report(self, progress: Progress) -> None:
        before, self.progress = self.state, progress
        self.state = progress.state
        if progress.state != before:
            if progress.state == "done":
                took = time.monotonic() - self._began
                log.info("broadcast %d done in %s: %s", self.id, duration(took),
                         describe(progress))  # fmt: skip
            elif progress.state == "cancelled":
                log.info("broadcast %d cancelled: %d chats not sent to (%s)", self.id,
                         progress.remaining, describe(progress))  # fmt: skip
            else:
                log.info("broadcast %d %s: %d chats left", self.id,
                         "paused" if progress.state == "paused" else "resumed",
                         progress.remaining)  # fmt: skip
        mark = progress.finished // self.log_every
        if mark > self._logged and progress.remaining:
            self._logged = mark
            log.info("broadcast %d: %s", self.id, describe(progress))
