"""Sending a job's reply: the calls of :func:`~tgrunner.jobs.reply.reply_calls`, retried within
bounds, and what counts as done.

How each answer is taken (:func:`deliver`):

- **429** (``RetryAfter``): wait ``retry_after`` and send again; a wait longer than
  :attr:`ReplyPolicy.max_retry_after` gives up.
- **5xx**, and a network error whose request provably never left (the connection could not
  be made, no connection was free): wait (:attr:`ReplyPolicy.backoff`, doubled, with jitter)
  and send again, up to :attr:`ReplyPolicy.tries` sends in all, then give up (*gave_up*).
- **A network error after the request may have reached Telegram** (the connection broke, or
  no answer came in time): not sent again, since a second ``sendMessage`` is a second
  message (the contract resends a request only when it provably did not reach Telegram): the
  reply is *unsure*.
- **Any other refusal** (400 ``chat not found``, 403 ``bot was blocked by the user``…): not
  sent again: *refused*.
- **401**: raised. The token is wrong or revoked; nothing else will work either.
- **An edit of the status message** that is refused: ``message is not modified`` counts as
  sent (the text is there already: a run after a death edits the message into the same
  result); any other refusal (the message was deleted, or is too old to edit) sends the
  ``fallback`` calls instead, a new reply.
- Calls after the first (deleting the status message after a file reply) are best effort.

Whatever the answer, the worker then records the reply as settled (``reply_sent``): a job
whose work is done is neither run again nor failed because its reply could not be delivered;
a refused, unsure or abandoned reply is logged with the job's id. Only a lost lease, or a stop
past its grace (:func:`deliver`'s ``may_send``), records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tgrunner.client.bot import Bot
from tgrunner.errors import (
    BadRequest,
    ConfigError,
    NetworkError,
    RetryAfter,
    ServerError,
    TelegramError,
    Unauthorized,
)
from tgrunner.jobs.reply import Call

__all__ = ["Delivered", "Delivery", "ReplyPolicy", "deliver", "may_resend_reply"]

log = logging.getLogger(__name__)

Delivered = Literal["sent", "nothing", "refused", "unsure", "gave_up", "stopped"]
"""How a reply ended: sent; nothing to send; refused by Telegram; maybe sent (a network error
after the request left); given up after the retries; stopped before a send (``may_send``)."""


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """How hard a reply is tried.

    - ``tries``: sends of one call at most, the first included (default 5).
    - ``backoff``: seconds before the second send after a 5xx or an unsent request (default
      0.5), doubled each time up to ``max_backoff`` (default 8), each wait drawn between half
      and all of it.
    - ``max_retry_after``: the longest 429 wait honoured, in seconds (default 60); a longer
      one gives up.
    """

    tries: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ConfigError(f"ReplyPolicy.tries must be 1 or more, not {self.tries}")
        if self.backoff < 0 or self.max_backoff < self.backoff or self.max_retry_after < 0:
            raise ConfigError(
                "ReplyPolicy needs 0 <= backoff <= max_backoff and max_retry_after >= 0"
            )


@dataclass(slots=True)
class Delivery:
    """What :func:`deliver` did: ``status``, the ``results`` of the calls that succeeded (in
    order; the first is the reply message) and the ``error`` that ended it, if one did."""

    status: Delivered
    results: list[Any] = field(default_factory=list)
    error: BaseException | None = None


class _Undelivered(Exception):
    def __init__(self, status: Delivered, error: BaseException | None) -> None:
        super().__init__(status)
        self.status = status
        self.error = error


def may_resend_reply(error: BaseException) -> bool:
    """Whether a reply call that failed with ``error`` may be sent again: a 5xx, a 429, or a
    network error whose request provably never left."""
    if isinstance(error, ServerError | RetryAfter):
        return True
    if isinstance(error, NetworkError):
        return getattr(error.__cause__, "sent", True) is False
    return False


def _not_modified(error: BaseException | None) -> bool:
    return isinstance(error, BadRequest) and "not modified" in error.description.lower()


async def _pause(seconds: float, cut: asyncio.Event | None) -> None:
    if cut is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await cut.wait()


async def _send(
    bot: Bot,
    call: Call,
    policy: ReplyPolicy,
    may_send: Callable[[], bool],
    cut: asyncio.Event | None,
) -> Any:
    method, params = call
    delay = policy.backoff
    for attempt in range(1, policy.tries + 1):
        if not may_send():
            raise _Undelivered("stopped", None)
        try:
            return await bot.request(method, params)
        except Unauthorized:
            raise
        except Exception as exc:
            if not may_resend_reply(exc):
                # A refusal is Telegram's answer; anything else (a broken connection, a
                # garbled answer) may have come after Telegram did it.
                status: Delivered = "refused" if isinstance(exc, TelegramError) else "unsure"
                raise _Undelivered(status, exc) from exc
            if attempt == policy.tries:
                raise _Undelivered("gave_up", exc) from exc
            if isinstance(exc, RetryAfter):
                wait = float(exc.retry_after or 1)
                if wait > policy.max_retry_after:
                    raise _Undelivered("gave_up", exc) from exc
            else:
                wait = delay * random.uniform(0.5, 1.0)
                delay = min(delay * 2, policy.max_backoff)
            log.info("%s: %s; sending it again in %.2f s", method, exc, wait)
            await _pause(wait, cut)
    raise AssertionError("unreachable")  # pragma: no cover


async def deliver(
    bot: Bot,
    calls: list[Call],
    *,
    policy: ReplyPolicy,
    fallback: list[Call] | None = None,
    may_send: Callable[[], bool] = lambda: True,
    cut: asyncio.Event | None = None,
) -> Delivery:
    """Make ``calls`` (the first is the reply; the rest best effort) as the module doc says.

    ``fallback``: the calls to make instead when the first, an edit of the status message,
    is refused (default None: none). ``may_send`` is asked before every send (default:
    always yes); ``cut``, once set, ends a wait between sends early. Raises
    :class:`~tgrunner.errors.Unauthorized`; any other error ends in the returned status.
    """
    if not calls:
        return Delivery("nothing")
    done = Delivery("sent")
    first, *rest = calls
    try:
        done.results.append(await _send(bot, first, policy, may_send, cut))
    except _Undelivered as exc:
        if exc.status == "refused" and first[0].startswith("edit"):
            if _not_modified(exc.error):
                done.results.append(None)
            elif fallback:
                log.info("%s refused (%s): sending the reply as a new message", first[0], exc.error)
                return await deliver(bot, fallback, policy=policy, may_send=may_send, cut=cut)
            else:
                return Delivery(exc.status, [], exc.error)
        else:
            return Delivery(exc.status, [], exc.error)
    for call in rest:
        try:
            done.results.append(await _send(bot, call, policy, may_send, cut))
        except _Undelivered as exc:
            log.info("%s after the reply failed: %s", call[0], exc.error or exc.status)
            done.results.append(None)
    return done
