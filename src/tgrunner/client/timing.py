"""What a :class:`~tgrunner.client.bot.Bot` tells of its calls, and the cheaper channel for the
calls that succeeded.

::

    bot.observe(on_call, CallTimes({"sendMessage": []}, fold=fold_them, every=256))

- ``on_call(method, error, seconds)`` is called after each request that failed (or after every
  request, without ``times``): ``error`` is None when it succeeded, and ``seconds`` is the
  transport's ``elapsed`` of the exchange that answered (a resend's, after a resend), or None
  when no answer came (a network error, or flood control's refusal).
- With ``times``, a call that succeeded, of a method that has a list in ``times.pending``,
  only has its ``seconds`` appended to that list, inline, with no call. Once the list holds
  ``every`` values, ``fold(method, values)`` is called, and must empty it. Another method's
  success reaches ``on_call``; a hook that makes a list for it keeps the next ones off the call.

Why two channels: a Python call with three arguments is most of what timing an API call costs,
and appending to a list is a fraction of it (see :mod:`tgrunner.scheduler.timing`, its twin).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CallObserver", "CallTimes"]

CallObserver = Callable[[str, BaseException | None, float | None], None]
"""``on_call(method, error, seconds)``: see the module doc."""


class CallTimes:
    """Where a Bot appends the seconds of the calls that succeeded, by method.

    - ``pending``: method name (as the Bot was given it) -> the seconds not yet folded.
    - ``fold``: called as ``fold(method, values)`` once ``values`` holds ``every`` seconds
      (default 256); it must empty ``values``.
    """

    __slots__ = ("every", "fold", "pending")

    def __init__(
        self,
        pending: dict[str, list[float]],
        *,
        fold: Callable[[str, list[float]], None],
        every: int = 256,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be 1 or more, not {every!r}")
        self.pending = pending
        self.fold = fold
        self.every = every
