"""The checks routes are made of: a check takes the context and says yes or no.

A check may leave what it found on the context (``ctx.match`` for a pattern, ``ctx.args`` for a
command); the router clears both when a later check of the same route says no, so the next
route sees only its own. ``where=`` filters are plain checks::

    router.message(text=re.compile(r"^order (\\d+)$"), where=lambda ctx: ctx.chat_id in shops)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tgrunner.frontends.native.context import Context

__all__ = ["Check", "command_check", "value_checks"]

Check = Callable[[Context], bool]


def value_checks(
    wanted: str | re.Pattern[str] | None,
    value_of: Callable[[Context], str | None],
    where: Check | None,
) -> tuple[Check, ...]:
    """Checks for a value matched exactly (str) or by ``re.search`` (pattern), then ``where``."""
    checks: list[Check] = []
    if isinstance(wanted, str):
        checks.append(lambda ctx: value_of(ctx) == wanted)
    elif wanted is not None:
        pattern = wanted
        checks.append(lambda ctx: _search(ctx, pattern, value_of(ctx)))
    if where:
        checks.append(where)
    return tuple(checks)


def command_check(names: frozenset[str], username: Callable[[], str | None]) -> Check:
    """A check for ``/name args`` and ``/name@username args`` with ``name`` in ``names``.

    ``username()`` gives the bot's username when the check runs (None: not known yet, then
    ``/name@anybot`` is taken); on success ``ctx.args`` holds the text after the command.
    """

    def check(ctx: Context) -> bool:
        text = ctx.text
        if not text or text[0] != "/":
            return False
        head, _, args = text.partition(" ")
        name, _, target = head[1:].partition("@")
        if name.lower() not in names:
            return False
        if target:
            me = username()
            if me and target.lower() != me.lower():
                return False
        ctx.args = args.strip()
        return True

    return check


def text_of(ctx: Context) -> str | None:
    return ctx.text


def callback_data_of(ctx: Context) -> str | None:
    return ctx.callback_data


def _search(ctx: Context, pattern: re.Pattern[str], value: str | None) -> bool:
    if value is None:
        return False
    m = pattern.search(value)
    if m is None:
        return False
    ctx.match = m
    return True
