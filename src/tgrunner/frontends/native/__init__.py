"""The native front-end: a small router, its context, filters and middlewares.

::

    from tgrunner.frontends.native import CallNext, Context, Router

    router = Router()

    @router.use
    async def log_updates(ctx: Context, call_next: CallNext) -> None:
        ctx.data["started"] = time.monotonic()
        await call_next()

    @router.error()
    async def on_error(ctx: Context, exc: Exception) -> None:
        await ctx.answer("Something went wrong; try again later.")

    @router.message()
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "…")
"""

from tgrunner.frontends.native.context import Context
from tgrunner.frontends.native.filters import Check
from tgrunner.frontends.native.middleware import CallNext, ErrorHandler, Handler, Middleware
from tgrunner.frontends.native.router import Router

__all__ = ["CallNext", "Check", "Context", "ErrorHandler", "Handler", "Middleware", "Router"]
