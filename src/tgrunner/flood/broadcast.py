"""Broadcasts: one message to many chats, paced at the bulk rate, resumed after a crash.

::

    from tgrunner.flood.broadcast import broadcast

    news = await broadcast(bot, subscriber_ids, text="Version 2 is out!", parse_mode="HTML")
    print(await news.progress())          # counts per state, rate, ...
    await news.wait()                     # until every chat had its send

    def personal(chat_id: int) -> dict:   # at the top level of a module: found again by path
        return {"text": f"Hello {names[chat_id]}!"}

    await broadcast(bot, subscriber_ids, build=personal)

- **Persistent.** :func:`broadcast` writes the broadcast and all its chats to the bot's outbox
  (:mod:`tgrunner.flood.outbox`, ``<data dir>/<bot id>/broadcasts.sqlite``) before the first
  send, and every chat's answer as it comes: a blocked bot (403) is ``blocked``, a chat that
  does not exist (400 ``chat not found``) ``missing``, another 400 ``failed`` with Telegram's
  words (:mod:`tgrunner.flood.sending` has every case).
- **Paced by the flood limiter.** Up to ``window`` sends (default 30) are in flight; each is
  ``bot.request("sendMessage", params, bulk=True, paid=paid)``, which the limiter paces at the
  bulk rate (30/s by default; the paid rate, 1000/s, with ``paid=True``, which also sets
  ``allow_paid_broadcast``). Replies to updates never wait behind a broadcast.
- **Resumed.** :func:`resume_broadcasts` (the runtime calls it as the bot starts) continues
  every running or paused broadcast that no live process holds. A chat whose answer was
  written is never sent again; those that were in flight are (at most ``window`` per
  broadcast per crash: the only duplicates).
- **Controlled.** ``handle.pause()``, ``resume()``, ``cancel()``, or ``tgrunner broadcast
  pause|resume|cancel ID`` from a shell: a sending broadcast stops taking chats at once (what
  is in flight ends, within about a second at the bulk rate); a paused one waits on the
  outbox's doorbell, without polling.
- **build** is a function ``chat_id -> dict`` of sendMessage parameters (over the ``**params``
  given), sync or async. It must be defined at the top level of a module, as a restart imports
  it again by its path: a lambda, a closure or a nested function is refused when the broadcast
  is made. A sync one runs on the event loop: keep it quick.
- **Progress** is logged (``tgrunner.flood.broadcast``) every ``log_every`` chats (default
  1000), and when a broadcast pauses, resumes, is cancelled or is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tgrunner._doorbell import Listener, listener_for
from tgrunner._import_path import check_importable, find_by_path, function_path
from tgrunner.errors import ConfigError
from tgrunner.flood.outbox import Claim, Outbox
from tgrunner.flood.records import BroadcastRecord, Progress, describe
from tgrunner.flood.sending import Run, Sender

__all__ = [
    "DEFAULT_WINDOW",
    "LOG_EVERY",
    "Broadcast",
    "Broadcaster",
    "Sender",
    "bot_sender",
    "broadcast",
    "broadcaster_of",
    "resume_broadcasts",
    "use_outbox",
]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 30
"""Sends of one broadcast in flight at most: the bulk rate's second, and the bound on what a
crash sends twice."""
LOG_EVERY = 1000
"""Chats between two progress lines in the log."""

_WHAT = "a broadcast's build function"
_RESERVED = frozenset({"chat_id", "text", "allow_paid_broadcast"})
_ATTACHED: weakref.WeakKeyDictionary[Any, Broadcaster] = weakref.WeakKeyDictionary()
_OUTBOX_AT: weakref.WeakKeyDictionary[Any, Path] = weakref.WeakKeyDictionary()


def bot_sender(bot: Any) -> Sender:
    """The :data:`~tgrunner.flood.sending.Sender` of a :class:`~tgrunner.client.bot.Bot`:
    ``bot.request(method, params, bulk=True, paid=paid)``, paced by its flood limiter.
    ConfigError for another kind of bot (an aiogram or PTB Bot), which cannot pace them."""
    request = getattr(bot, "request", None)
    try:
        names = inspect.signature(request).parameters if callable(request) else {}
    except (TypeError, ValueError):
        names = {}
    if request is not None and "bulk" in names and "paid" in names:

        async def paced(method: str, params: Mapping[str, Any], paid: bool) -> Any:
            return await request(method, params, bulk=True, paid=paid)

        return paced
    raise ConfigError(
        f"{type(bot).__name__} cannot send a broadcast: it needs tgrunner's Bot, whose "
        "request() paces bulk sends (ctx.bot in a native handler, or tgrunner.client.bot.Bot("
        "token)); an aiogram or PTB bot's own Bot has no bulk pacing"
    )


class Broadcast:
    """A broadcast sent by this process: from :meth:`Broadcaster.start`, :func:`broadcast`
    or :meth:`Broadcaster.resume`. ``id`` is its id in the outbox (what ``tgrunner broadcast
    status ID`` takes)."""

    def __init__(self, run: Run) -> None:
        self.id = run.id
        self._run = run

    def __repr__(self) -> str:
        return f"<Broadcast {self.id} {self._run.state}>"

    async def progress(self) -> Progress:
        """Where it stands: counts per state, its state, rate and ETA (as of its last step,
        a few milliseconds ago while it sends)."""
        return self._run.progress

    async def wait(self) -> Progress:
        """Wait until it is done or cancelled here, or until this process stops sending it (a
        clean stop: it is still running in the outbox, resumed at the next start); return
        its last progress. Raises what stopped it early (a revoked token: Unauthorized).
        Cancelling the wait does not cancel the broadcast."""
        await asyncio.shield(self._run.task)
        if self._run.error is not None:
            raise self._run.error
        return self._run.progress

    async def pause(self) -> bool:
        """Pause it (False when it is not running)."""
        return await self._control("pause")

    async def resume(self) -> bool:
        """Resume it after a pause (False when it is not paused)."""
        return await self._control("resume")

    async def cancel(self) -> bool:
        """Cancel it: the chats not sent to yet never are (False when it has ended)."""
        return await self._control("cancel")

    async def _control(self, action: str) -> bool:
        if self._run.task.done():  # sent no more here; its broadcaster may have closed
            return await asyncio.to_thread(_control_file, self._run.outbox.path, self.id, action)
        outbox = self._run.outbox
        applied, _ = await outbox.run(outbox.set_state, self.id, action)
        self._run.poked.set()
        return applied


def _control_file(path: Path, broadcast_id: int, action: str) -> bool:
    with Outbox(path) as outbox:
        return outbox.set_state(broadcast_id, action)[0]


class Broadcaster:
    """Sends the broadcasts of one outbox from this process, through ``sender`` (see
    :func:`bot_sender`).

    - ``window``: sends in flight per broadcast at most (default :data:`DEFAULT_WINDOW`, 30).
    - ``log_every``: chats between progress lines (default :data:`LOG_EVERY`, 1000).
    - ``grace``: seconds :meth:`close` lets the sends in flight end (default 5); those still
      in flight then are sent again at the next resume.
    - ``close_outbox``: close ``outbox`` in :meth:`close` (default False).

    Use ``async with`` or call :meth:`close` (safe to call twice).
    """

    def __init__(
        self,
        outbox: Outbox,
        sender: Sender,
        *,
        window: int = DEFAULT_WINDOW,
        log_every: int = LOG_EVERY,
        grace: float = 5.0,
        close_outbox: bool = False,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"a broadcast's window must be a whole number ≥ 1, not {window!r}")
        if log_every < 1:
            raise ConfigError(f"log_every must be at least 1, not {log_every!r}")
        if not grace >= 0:
            raise ConfigError(f"grace must be 0 or more seconds, not {grace!r}")
        self.outbox = outbox
        self.sender = sender
        self.window = window
        self.log_every = log_every
        self.grace = grace
        self._close_outbox = close_outbox
        self._runs: dict[int, Run] = {}
        self._listener: Listener | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self._auto_close = False  # close once no broadcast is left (broadcast()'s own)
        self._rescan = False  # resume on each ring of the doorbell (the runtime's)

    def __repr__(self) -> str:
        return f"<Broadcaster {self.outbox.path}, {len(self._runs)} sending>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def sending(self) -> list[int]:
        """The ids of the broadcasts this process holds now (sending or paused)."""
        return list(self._runs)

    def get(self, broadcast_id: int) -> Broadcast | None:
        """The handle of a broadcast this process holds (one :meth:`resume` took), or None."""
        run = self._runs.get(broadcast_id)
        return None if run is None else Broadcast(run)

    async def __aenter__(self) -> Broadcaster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(
        self,
        chat_ids: Iterable[int | str],
        text: str | None = None,
        *,
        build: Callable[[Any], Any] | None = None,
        paid: bool = False,
        **params: Any,
    ) -> Broadcast:
        """Write a broadcast of ``text`` (or of what ``build`` returns per chat) with
        ``params`` to ``chat_ids`` (ints or ``"@username"``; each chat once, in order) and
        start sending it; return its handle. ConfigError for what cannot be stored or found
        again (see the module doc)."""
        if self._closed:
            raise ConfigError("this broadcaster is closed: the bot is stopping")
        path = _check_request(text, build, paid, params)

        async def begin() -> Broadcast:
            claim = await asyncio.to_thread(
                self.outbox.create, chat_ids, text=text, params=params, build=path, paid=paid
            )
            try:
                record = await self.outbox.run(self.outbox.record, claim.broadcast_id)
                progress = await self.outbox.run(self.outbox.progress, claim.broadcast_id)
                assert record is not None and progress is not None
                if self._closed:
                    raise ConfigError(
                        f"this broadcaster closed while broadcast {claim.broadcast_id} was "
                        "written: it is sent when the bot starts again"
                    )
            except BaseException:
                claim.release()
                raise
            log.info("broadcast %d: sending to %d chats", record.id, progress.total)
            return self._run(record, claim, progress, build)

        # Once written, the broadcast is sent even when the caller is cancelled meanwhile (a
        # handler's time limit, a stop): its claim is never left held by nobody.
        return await asyncio.shield(asyncio.ensure_future(begin()))

    async def resume(self) -> list[Broadcast]:
        """Continue every running or paused broadcast of the outbox that no live process holds
        (after a crash or a stop); return their handles. One whose ``build`` cannot be
        imported any more is left as it is, with an error log line."""
        if self._closed:
            raise ConfigError("this broadcaster is closed: the bot is stopping")
        outbox = self.outbox
        handles: list[Broadcast] = []
        for broadcast_id in await outbox.run(outbox.live):
            if broadcast_id in self._runs:
                continue
            claim = await outbox.run(outbox.claim, broadcast_id)
            if claim is None:
                continue  # another live process sends it
            try:
                handle = await self._resume_one(claim)
            except BaseException:
                claim.release()
                raise
            if handle is not None:
                handles.append(handle)
        return handles

    async def _resume_one(self, claim: Claim) -> Broadcast | None:
        outbox = self.outbox
        record = await outbox.run(outbox.record, claim.broadcast_id)
        progress = await outbox.run(outbox.progress, claim.broadcast_id)
        assert record is not None and progress is not None
        build = None
        if record.build is not None:
            try:
                build = find_by_path(record.build, what=_WHAT, error=ConfigError)
            except ConfigError as exc:
                log.error(
                    "broadcast %d is not resumed: its build function %s cannot be found (%s)",
                    record.id, record.build, exc,
                )  # fmt: skip
                claim.release()
                return None
        log.info(
            "broadcast %d resumed (%s): %s%s",
            record.id, progress.state, describe(progress),
            f"; {claim.requeued} chats that were in flight are sent again"
            if claim.requeued else "",
        )  # fmt: skip
        return self._run(record, claim, progress, build)

    def _run(
        self,
        record: BroadcastRecord,
        claim: Claim,
        progress: Progress,
        build: Callable[[Any], Any] | None,
    ) -> Broadcast:
        self._watch()
        run = Run(
            self.outbox, self.sender, record, claim, progress,
            build=build, window=self.window, log_every=self.log_every, on_end=self._ended,
        )  # fmt: skip
        run.polls = self._listener is None
        self._runs[run.id] = run
        return Broadcast(run)

    def _watch(self) -> None:
        """Start listening to the outbox's doorbell (once): a ring pokes every run."""
        if self._watcher is not None:
            return
        self._listener = listener_for(self.outbox.path, who="broadcast")
        if self._listener is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._doorbell())

    async def _doorbell(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            if await listener.wait(3600.0):
                for run in self._runs.values():
                    run.poked.set()
                if self._rescan and not self._closed:
                    # A process that let go of live broadcasts rang (a worker replaced by
                    # SIGHUP, a clean stop): take what nobody holds now.
                    try:
                        await self.resume()
                    except Exception:
                        log.exception("broadcasts: resuming after a ring failed")

    def _ended(self, run: Run) -> None:
        self._runs.pop(run.id, None)
        if self._auto_close and not self._runs and not self._closed:
            self._closed = True  # nothing left to wait for: close at once
            self._shut()

    def _shut(self) -> None:
        listener, self._listener = self._listener, None
        watcher = self._watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()
            if listener is not None:  # closed once the watcher no longer reads it
                watcher.add_done_callback(lambda _: listener.close())
        elif listener is not None:
            listener.close()
        if self._close_outbox:
            self.outbox.close()

    async def close(self) -> None:
        """Stop sending: no chat is taken any more, the sends in flight get ``grace`` seconds
        to end (then they are cancelled, and sent again at the next resume), and every
        answer is written. The broadcasts stay running or paused in the outbox, for the next
        :meth:`resume`. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        runs = list(self._runs.values())
        for run in runs:
            run.closing = True
            run.poked.set()
        try:
            if runs:
                await asyncio.wait([run.task for run in runs], timeout=self.grace)
        finally:
            for run in runs:
                run.abort()
            await asyncio.gather(*(run.task for run in runs), return_exceptions=True)
            if any(run.state != "done" and run.state != "cancelled" for run in runs):
                # Let another live process of the bot take them at once (the worker that
                # replaces this one started before this one stopped).
                with contextlib.suppress(OSError):
                    self.outbox.bell.ring()
            self._shut()
        if self._watcher is not None:
            await asyncio.gather(self._watcher, return_exceptions=True)


def _check_request(
    text: str | None, build: Callable[[Any], Any] | None, paid: bool, params: dict[str, Any]
) -> str | None:
    """Refuse a broadcast that cannot be sent or found again; return ``build``'s path."""
    if (text is None) == (build is None):
        raise ConfigError("a broadcast sends text=... or build=...: give one of them")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise ConfigError(f"a broadcast's text must be a non-empty str, not {text!r}")
    if not isinstance(paid, bool):
        raise ConfigError(f"paid must be True or False, not {paid!r}")
    reserved = sorted(_RESERVED & set(params))
    if reserved:
        raise ConfigError(
            f"a broadcast sets {', '.join(reserved)} itself: pass the chats as chat_ids, the "
            "text as text=, and paid=True for allow_paid_broadcast"
        )
    if build is None:
        return None
    if not callable(build):
        raise ConfigError(f"build must be a function chat_id -> dict, not {build!r}")
    path = function_path(build, what=_WHAT, error=ConfigError)
    check_importable(build, path, what=_WHAT, error=ConfigError)
    try:
        inspect.signature(build).bind(0)
    except TypeError:
        raise ConfigError(
            f"{path} must take one argument, the chat id, and return a dict of sendMessage "
            "parameters"
        ) from None
    except ValueError:
        pass  # no signature to look at (a builtin): let its first call say
    return path


def use_outbox(bot: Any, path: str | Path) -> None:
    """Make ``path`` the outbox :func:`broadcast` makes for ``bot`` at its first use, when no
    broadcaster is attached to it: the runtime's, for a bot that has no outbox yet (so that a
    bot that never broadcasts leaves no file)."""
    _OUTBOX_AT[bot] = Path(path)


def broadcaster_of(bot: Any) -> Broadcaster | None:
    """The broadcaster :func:`resume_broadcasts` (or a first :func:`broadcast`) gave ``bot``,
    while it is open; else None."""
    found = _ATTACHED.get(bot)
    return None if found is None or found.closed else found


async def resume_broadcasts(
    bot: Any,
    outbox: Outbox,
    *,
    sender: Sender | None = None,
    window: int = DEFAULT_WINDOW,
    log_every: int = LOG_EVERY,
    grace: float = 5.0,
) -> Broadcaster:
    """What the runtime calls as the bot starts: a :class:`Broadcaster` of ``outbox`` for
    ``bot`` (its ``sender`` default :func:`bot_sender`), made the one :func:`broadcast` uses
    for this bot, after it resumed every broadcast no live process holds. Close it as the bot
    stops (:meth:`Broadcaster.close`); it does not close ``outbox``."""
    found = Broadcaster(
        outbox, sender or bot_sender(bot), window=window, log_every=log_every, grace=grace
    )
    _ATTACHED[bot] = found
    found._rescan = True
    found._watch()  # a ring from a process letting go of broadcasts makes this one resume
    await found.resume()
    return found


async def broadcast(
    bot: Any,
    chat_ids: Iterable[int | str],
    text: str | None = None,
    *,
    build: Callable[[Any], Any] | None = None,
    paid: bool = False,
    outbox: Outbox | str | Path | None = None,
    **params: Any,
) -> Broadcast:
    """Send ``text`` (or what ``build`` returns per chat) with the sendMessage ``params`` to
    every chat of ``chat_ids``, paced at the bulk rate, from a persistent outbox; return the
    :class:`Broadcast` handle (see the module doc).

    ``outbox``: an :class:`~tgrunner.flood.outbox.Outbox` or its file; default the one the
    runtime opened for ``bot`` (:func:`resume_broadcasts`), else ``<data dir>/<bot id>/
    broadcasts.sqlite`` in ``$TGRUNNER_DATA_DIR`` (default ``./.tgrunner``), sent by a
    broadcaster of its own that closes once its broadcasts end.
    """
    found = broadcaster_of(bot)
    if found is not None and outbox is None:
        return await found.start(chat_ids, text, build=build, paid=paid, **params)
    if isinstance(outbox, Outbox):
        box, own = outbox, False
    else:
        at = _OUTBOX_AT.get(bot) if outbox is None else None
        if at is not None:
            at.parent.mkdir(parents=True, exist_ok=True)
            box = Outbox(at)
        else:
            box = Outbox.for_bot(bot.id) if outbox is None else Outbox(outbox)
        own = True
    if found is not None and found.outbox.path.resolve() == box.path.resolve():
        if own:
            box.close()
        return await found.start(chat_ids, text, build=build, paid=paid, **params)
    sender = Broadcaster(box, bot_sender(bot), close_outbox=own)
    sender._auto_close = True
    if outbox is None:
        _ATTACHED[bot] = sender
    try:
        return await sender.start(chat_ids, text, build=build, paid=paid, **params)
    except BaseException:
        await sender.close()
        raise
