"""The native front-end's router: from updates to handlers, through middlewares and error handlers.

::

    router = Router()

    @router.command("start")
    async def start(ctx: Context) -> None:
        await ctx.reply("Hello!")

    @router.callback(data="yes")
    async def yes(ctx: Context) -> None:
        await ctx.answer_callback("Noted")

    @router.message()                       # any other message
    async def echo(ctx: Context) -> None:
        await ctx.reply(ctx.text or "…")

    admin = Router()                        # routers nest; the tree stays live
    router.include(admin)

    @admin.use                              # runs around admin's handlers only
    async def admins_only(ctx: Context, call_next: CallNext) -> None:
        if ctx.user and ctx.user["id"] in ADMINS:
            await call_next()

    @router.error(TelegramError)            # for router's routes and admin's
    async def on_telegram_error(ctx: Context, exc: Exception) -> None:
        log.warning("update %d: %s", ctx.update_id, exc)

Routes are tried in the order they were added, within the update's kind; the first match runs.
An included router's routes take the place of the ``include()`` call in that order, and routes,
middlewares and error handlers added to it later count too. An update no route takes is ignored,
unless a fallback takes it. The bot's username (set by the runtime) reaches every included
router, so ``/cmd@otherbot`` is refused everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from tgrunner.client.bot import Bot
from tgrunner.frontends.native.context import JSON, Context
from tgrunner.frontends.native.filters import Check, callback_data_of, command_check, text_of
from tgrunner.frontends.native.filters import value_checks as _checks
from tgrunner.frontends.native.middleware import (
    ErrorHandler,
    ErrorRule,
    Handler,
    Middleware,
    handle_error,
    wrap,
)
from tgrunner.keys import KeyFunc

__all__ = ["Context", "Handler", "Router"]

# The routers from the top one down to a route's owner.
_Path = tuple["Router", ...]


class _Route:
    __slots__ = ("checks", "handler", "kinds")

    def __init__(
        self, handler: Handler, checks: tuple[Check, ...], kinds: tuple[str, ...] | None
    ) -> None:
        self.handler = handler
        self.checks = checks
        self.kinds = kinds  # None: every kind (a fallback)


class _Entry:
    """A route as the top router runs it: its checks, and its handler inside the chain of the
    routers above it (``call``); ``errors``: their error rules, nearest first, for what the
    checks raise."""

    __slots__ = ("call", "checks", "errors")

    def __init__(self, route: _Route, path: _Path) -> None:
        call = route.handler
        for router in reversed(path):
            call = wrap(call, router._middlewares, router._errors)
        self.call = call
        self.checks = route.checks
        self.errors = tuple(tuple(r._errors) for r in reversed(path) if r._errors)


class Router:
    """Routes updates to handlers by kind, command, text pattern and callback data.

    A router is itself a handler (``await router(update, bot)``), so routers nest with
    :meth:`include`. It starts with no routes, no fallback, no middleware, no error handler and
    no username.

    ``keys``: the ordering keys of the bot's updates (see :mod:`tgrunner.keys`), used when
    this router is the one the runtime runs and the settings keep the default keys; default
    None: the settings' (the chat). An included router's keys are not used.
    """

    def __init__(self, *, keys: KeyFunc | None = None) -> None:
        if keys is not None and not callable(keys):
            raise TypeError(f"keys is a function of an update returning its keys, not {keys!r}")
        self.keys = keys
        self._items: list[_Route | Router] = []
        self._fallback: _Route | None = None
        self._middlewares: list[Middleware] = []
        self._errors: list[ErrorRule] = []
        self._username: str | None = None
        self._parents: list[Router] = []
        # The whole tree flattened, by kind; rebuilt on the first update after any change.
        self._table: dict[str, tuple[_Entry, ...]] | None = None
        self._catch_all: tuple[_Entry, ...] = ()

    def kinds(self) -> list[str]:
        """The update kinds some route of this router or an included one handles.

        Use as ``allowed_updates``; a fallback adds no kind.
        """
        return list(self._compiled())

    def _add(self, kinds: Iterable[str], checks: tuple[Check, ...]) -> Callable[[Handler], Handler]:
        wanted = tuple(dict.fromkeys(kinds))

        def register(handler: Handler) -> Handler:
            self._items.append(_Route(handler, checks, wanted))
            self._changed()
            return handler

        return register

    def on(self, *kinds: str, where: Check | None = None) -> Callable[[Handler], Handler]:
        """Handle updates of the given kinds (``"inline_query"``, ``"chat_member"``…).

        ``where``: an extra check, default none.
        """
        return self._add(kinds, (where,) if where else ())

    def message(
        self,
        *,
        text: str | re.Pattern[str] | None = None,
        kinds: Iterable[str] = ("message",),
        where: Check | None = None,
    ) -> Callable[[Handler], Handler]:
        """Handle messages; ``text`` matches exactly (str) or by ``re.search`` (pattern, the
        match in ``ctx.match``); default any. ``kinds`` default ``("message",)``; ``where``:
        an extra check, default none."""
        return self._add(kinds, _checks(text, text_of, where))

    def command(
        self, *names: str, kinds: Iterable[str] = ("message",), where: Check | None = None
    ) -> Callable[[Handler], Handler]:
        """Handle ``/name`` commands (also ``/name@thisbot``, never ``/name@otherbot`` once the
        username is known); ``ctx.args`` has the rest of the text. ``kinds`` default
        ``("message",)``; ``where``: an extra check, default none."""
        wanted = frozenset(n.lower().lstrip("/") for n in names)
        check = command_check(wanted, lambda: self._username)
        return self._add(kinds, (check, where) if where else (check,))

    def callback(
        self, *, data: str | re.Pattern[str] | None = None, where: Check | None = None
    ) -> Callable[[Handler], Handler]:
        """Handle callback queries; ``data`` matches exactly (str) or by ``re.search``
        (pattern, the match in ``ctx.match``); default any. ``where``: an extra check."""
        return self._add(("callback_query",), _checks(data, callback_data_of, where))

    def fallback(self, handler: Handler) -> Handler:
        """Handle every update of any kind that reached this router and no route took.

        The fallback is this router's last route, whenever it was set; a second call replaces
        it. In an included router it takes what the routes after the ``include()`` would have.
        """
        self._fallback = _Route(handler, (), None)
        self._changed()
        return handler

    def use(self, middleware: Middleware) -> Middleware:
        """Run ``middleware`` around the handler of every route of this router and of the
        routers it includes (``router.use(fn)`` or ``@router.use``).

        ``async def fn(ctx, call_next)``: ``await call_next()`` runs the inner middlewares and
        the handler and returns the handler's result; not calling it skips them. Middlewares run
        only once a route matched, in the order they were added, outer routers' outside.
        """
        self._middlewares.append(middleware)
        self._changed()
        return middleware

    def error(self, *types: type[Exception]) -> Callable[[ErrorHandler], ErrorHandler]:
        """Handle the errors of ``types`` (default: any :class:`Exception`) that this router's
        handlers, middlewares and route checks raise, and those of the routers it includes::

            @router.error(TelegramError, TimeoutError)
            async def on_error(ctx: Context, exc: Exception) -> None: ...

        The handler of the nearest router takes the error, and within a router the first added
        whose types match. What none takes goes on to the parent router, and from the top router
        to the runtime's ``on_error``, as without handlers. A handler that raises (or re-raises)
        passes that on in the same way.
        """
        for t in types:
            if not (isinstance(t, type) and issubclass(t, Exception)):
                if callable(t) and not isinstance(t, type):
                    raise TypeError("use @router.error() with parentheses: it takes the types")
                raise TypeError(f"router.error() takes Exception subclasses, not {t!r}")
        caught: tuple[type[Exception], ...] = types or (Exception,)

        def register(handler: ErrorHandler) -> ErrorHandler:
            self._errors.append((caught, handler))
            self._changed()
            return handler

        return register

    def include(self, other: Router) -> None:
        """Run ``other``'s routes here, in this router's order of routes at this point.

        Live: what is added to ``other`` later counts too. ``other`` gets this router's username.
        A router may be included in several places; a cycle is refused with ValueError.
        """
        if other is self or self._within(other):
            raise ValueError("including this router would make a cycle of routers")
        self._items.append(other)
        if self not in other._parents:
            other._parents.append(self)
        if self._username is not None:
            other.set_username(self._username)
        self._changed()

    def set_username(self, username: str | None) -> None:
        """The bot's username, so ``/cmd@otherbot`` is not taken for this bot's.

        Reaches every included router. The runtime sets it from ``getMe`` at start-up.
        """
        self._username = username
        for item in self._items:
            if isinstance(item, Router):
                item.set_username(username)

    def _within(self, other: Router) -> bool:
        """Whether this router is included in ``other``, at any depth."""
        return any(
            isinstance(item, Router) and (item is self or self._within(item))
            for item in other._items
        )

    def _changed(self) -> None:
        self._table = None
        for parent in self._parents:
            parent._changed()

    def _flatten(self, above: _Path, out: list[tuple[_Route, _Path]]) -> None:
        path = (*above, self)
        for item in self._items:
            if isinstance(item, Router):
                item._flatten(path, out)
            else:
                out.append((item, path))
        if self._fallback is not None:
            out.append((self._fallback, path))

    def _compiled(self) -> dict[str, tuple[_Entry, ...]]:
        table = self._table
        if table is not None:
            return table
        flat: list[tuple[_Route, _Path]] = []
        self._flatten((), flat)
        kinds: dict[str, None] = {}
        for route, _ in flat:
            kinds.update(dict.fromkeys(route.kinds or ()))
        entries = [(route, _Entry(route, path)) for route, path in flat]
        table = {
            kind: tuple(e for r, e in entries if r.kinds is None or kind in r.kinds)
            for kind in kinds
        }
        self._catch_all = tuple(e for r, e in entries if r.kinds is None)
        self._table = table
        return table

    async def __call__(self, update: JSON, bot: Bot) -> None:
        for kind in update:
            if kind == "update_id":
                continue
            table = self._table
            if table is None:
                table = self._compiled()
            entries = table.get(kind, self._catch_all)
            ctx = Context(update, kind, bot)
            entry: _Entry | None = None
            try:
                for entry in entries:
                    for check in entry.checks:
                        if not check(ctx):
                            # What this route's checks found is not the next route's.
                            ctx.match = None
                            ctx.args = ""
                            break
                    else:
                        break
                else:
                    return
            except Exception as exc:
                if entry is None or not entry.errors:
                    raise
                await handle_error(entry.errors, ctx, exc)
                return
            await entry.call(ctx)
            return
