"""The chain around a handler: middlewares, then error handlers, router by router.

A middleware is ``async def fn(ctx, call_next)``; ``await call_next()`` runs the rest of the
chain (inner middlewares, then the handler) and returns what it returned::

    @router.use
    async def timing(ctx: Context, call_next: CallNext) -> Any:
        started = time.monotonic()
        try:
            return await call_next()          # not calling it skips the handler
        finally:
            log.info("update %d took %.3f s", ctx.update_id, time.monotonic() - started)

An error handler is ``async def fn(ctx, exc)`` for the exception types it was registered with.
For a route owned by router R included in P, the chain is::

    P's error handlers ( P's middlewares ( R's error handlers ( R's middlewares ( handler ))))

so R's error handlers see what R's middlewares and the handler raise, and what they do not take
(or raise themselves) goes on out through P's middlewares to P's error handlers, then to the
runtime. Only :class:`Exception` is caught: cancellation (a time limit, a stop) passes through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from tgrunner.frontends.native.context import Context

__all__ = [
    "CallNext",
    "ErrorHandler",
    "ErrorRule",
    "Handler",
    "Middleware",
    "handle_error",
    "wrap",
]

Handler = Callable[[Context], Awaitable[Any]]
CallNext = Callable[[], Awaitable[Any]]
Middleware = Callable[[Context, CallNext], Awaitable[Any]]
ErrorHandler = Callable[[Context, Exception], Awaitable[Any]]
# The exception types an error handler takes, and the handler.
ErrorRule = tuple[tuple[type[Exception], ...], ErrorHandler]


def wrap(
    handler: Handler, middlewares: Sequence[Middleware], rules: Sequence[ErrorRule]
) -> Handler:
    """``handler`` inside ``middlewares`` (the first outermost), all inside the error ``rules``.

    With neither, ``handler`` itself comes back: a router without middlewares or error handlers
    adds no frame to the call.
    """
    call = handler
    for middleware in reversed(middlewares):
        call = _through(middleware, call)
    if rules:
        call = _guarded(call, tuple(rules))
    return call


def _through(middleware: Middleware, inner: Handler) -> Handler:
    async def step(ctx: Context) -> Any:
        return await middleware(ctx, partial(inner, ctx))

    return step


def _guarded(inner: Handler, rules: tuple[ErrorRule, ...]) -> Handler:
    async def guarded(ctx: Context) -> Any:
        try:
            return await inner(ctx)
        except Exception as exc:
            handler = _pick(rules, exc)
            if handler is None:
                raise
            return await handler(ctx, exc)

    return guarded


def _pick(rules: tuple[ErrorRule, ...], exc: Exception) -> ErrorHandler | None:
    for types, handler in rules:
        if isinstance(exc, types):
            return handler
    return None


async def handle_error(
    levels: Sequence[tuple[ErrorRule, ...]], ctx: Context, exc: Exception
) -> None:
    """Give ``exc`` to the error rules of ``levels`` (nearest router first), as the chain would.

    For what a route's checks raise, before any middleware ran. Raises what no rule takes, or
    what the last handler that took it raised.
    """
    for rules in levels:
        handler = _pick(rules, exc)
        if handler is None:
            continue
        try:
            await handler(ctx, exc)
        except Exception as raised:
            exc = raised
        else:
            return
    raise exc
