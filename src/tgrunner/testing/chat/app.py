"""The asynchronous half of the terminal chat: FakeTelegram, the user's bot and a
:class:`~.session.ChatSession`, all on one event loop.

:class:`ChatApp` starts an embedded FakeTelegram, builds the bot's runner from its import
string exactly as ``tgrunner run`` does (:func:`~tgrunner.runtime.build.build_runner`), serves
it against the fake, and shows the bot's calls as they are recorded. The terminal
(:mod:`.terminal`) hands it typed lines with :meth:`ChatApp.submit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.errors import TgrunnerError
from tgrunner.protocols import Executor
from tgrunner.runtime.build import build_launcher
from tgrunner.runtime.entry import EntryPoint
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.testing.chat.commands import CommandError, parse
from tgrunner.testing.chat.session import ChatSession
from tgrunner.testing.fake.server import FakeTelegram

__all__ = ["ChatApp"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

_SHOWN = {"ptb": "python-telegram-bot"}
"""How the chat's banner names a front-end, by the runner's name for it."""


def _nowhere(lines: list[str]) -> None:
    """An ``emit`` that drops the lines."""


class _Reporting:
    """The runner's executor, telling ``done(update_id)`` when each update is handled (raised,
    timed out or cancelled included), so piped input can wait for the bot to settle."""

    def __init__(self, inner: Executor, done: Callable[[int], None]) -> None:
        self.inner = inner
        self.done = done

    async def start(self) -> None:
        await self.inner.start()

    def execute(self, update: JSON) -> Awaitable[Any]:
        return self._run(update)

    async def _run(self, update: JSON) -> Any:
        try:
            return await self.inner.execute(update)
        finally:
            self.done(update["update_id"])

    async def close(self) -> None:
        await self.inner.close()


class ChatApp:
    """The bot at ``target`` (an import string, as for ``tgrunner run``, or the bot object
    itself) against an embedded FakeTelegram, talked to through a :class:`ChatSession`.

    - ``settings``: the runner's settings (default ``Settings.from_env()``); the caller
      chooses strict offsets or a journal.
    - ``options``: front-end options for :func:`build_launcher` (``session="aiogram"``…).
    - ``emit(lines)``: where the chat's lines go, called on the event loop (default: nowhere;
      it may be set later, until :meth:`start`).
    - ``user_name``: the first simulated user's first name (default ``"You"``).
    - ``export_token``: set ``BOT_TOKEN`` in this process's environment to the fake's token
      at start when it is unset (default False; ``tgrunner chat``, which owns its process,
      sets it).
    """

    def __init__(
        self,
        target: str | Any,
        *,
        emit: Callable[[list[str]], None] | None = None,
        settings: Settings | None = None,
        options: dict[str, Any] | None = None,
        user_name: str = "You",
        export_token: bool = False,
    ) -> None:
        self.target = target
        self.export_token = export_token
        self.emit: Callable[[list[str]], None] = emit or _nowhere
        self.settings = settings
        self.options = options or {}
        self.user_name = user_name
        self.tg = FakeTelegram()
        self.runner: Runner | None = None
        self._launcher: Runner | EntryPoint | None = None
        self.session: ChatSession | None = None
        self._serve: asyncio.Task[int] | None = None
        self._feed: asyncio.Task[None] | None = None

    @property
    def frontend(self) -> str:
        """The front-end's name (valid once started)."""
        if self.runner is None:
            return "unknown"
        return _SHOWN.get(self.runner.frontend, self.runner.frontend)

    @property
    def bot_user(self) -> JSON:
        """The bot's User object, as ``getMe`` answers it."""
        return self.tg.bot_user

    @property
    def serving(self) -> asyncio.Task[int] | None:
        """The runner's ``serve()`` task (None before :meth:`start`); it ends when the bot
        stops, by :meth:`stop` or by a failure."""
        return self._serve

    async def start(self, timeout: float = 30.0) -> None:
        """Start FakeTelegram and the bot; return once the bot polls. With ``export_token``,
        ``BOT_TOKEN`` is set to the fake's token when it is not set, so a module-level
        ``Bot(getenv("BOT_TOKEN"))`` works.

        Raises :class:`~tgrunner.errors.ConfigError` when the target cannot be run, the bot's
        own start-up failure, or :class:`~tgrunner.errors.TgrunnerError` when the bot stops or
        does not poll within ``timeout`` seconds (default 30). Everything is closed then.
        """
        tg = self.tg
        await tg.start()
        if self.export_token:
            # As 'tgrunner run --token' does: a module that reads BOT_TOKEN at import
            # (aiogram's quickstart) gets the fake's token, unless BOT_TOKEN is set already.
            os.environ.setdefault("BOT_TOKEN", tg.token)
        try:
            session = self.session = ChatSession(tg, self.emit, user_name=self.user_name)

            def adopt(runner: Runner) -> None:
                # Called as soon as the Runner exists: at once for a bot object, at its
                # polling call for an entry point (main), which then runs in the chat too.
                self.runner = runner
                runner.executor = _Reporting(runner.executor, session.handled)

            launcher = self._launcher = build_launcher(
                self.target,
                token=tg.token,
                api_url=tg.api_url,
                settings=self.settings,
                prepare=adopt,
                **self.options,
            )
            serve = self._serve = asyncio.create_task(launcher.serve(install_signals=False))
            # A stopped bot must wake whoever waits for it to settle.
            serve.add_done_callback(lambda _: tg.state.changed())
            polling = asyncio.ensure_future(tg.wait_until_polling(timeout))
            await asyncio.wait({serve, polling}, return_when=asyncio.FIRST_COMPLETED)
            if serve.done():
                polling.cancel()
                with contextlib.suppress(BaseException):
                    await polling
                await serve  # its failure, if any, is the reason
                raise TgrunnerError("the bot stopped during start-up")
            try:
                await polling
            except TimeoutError:
                raise TgrunnerError(f"the bot did not start polling within {timeout:g} s") from None
            self._feed = asyncio.create_task(self._show_feed())
        except BaseException:
            await self.stop()
            raise

    async def _show_feed(self) -> None:
        state, session = self.tg.state, self.session
        assert session is not None  # set before the feed starts
        while True:
            changed = state.watch()  # before draining, so no change between goes unseen
            session.drain()
            await changed

    async def submit(self, line: str, *, settle: float | None = None) -> bool:
        """Run one typed line; False when it asks to quit.

        With ``settle`` (seconds), wait until the bot has handled what the line sent, at most
        that long, and show what it did before returning (for piped input); default None:
        return at once, and the bot's answers show up as they come.
        """
        session = self.session
        assert session is not None, "start() first"
        try:
            command = parse(line)
        except CommandError as exc:
            session.note(str(exc))
            return True
        if command is None:
            return True
        if command.name == "quit":
            return False
        session.execute(command)
        if settle is not None:
            await self._settle(settle)
        return True

    async def _settle(self, timeout: float) -> None:
        session, serve = self.session, self._serve
        assert session is not None and serve is not None
        try:
            await self.tg.wait_for(lambda: not session.pending or serve.done(), timeout)
        except TimeoutError:
            session.note(f"the bot is still busy after {timeout:g} s; going on")
        session.drain()

    async def stop(self, *, fast: bool = False) -> int:
        """Stop the bot (cleanly, or at once with ``fast``) and FakeTelegram; return the
        runner's exit code (0 after a clean stop; 0 too when it never started).

        Raises what made the bot fail, if it did. Safe to call twice.
        """
        code = 0
        try:
            if self._serve is not None and self._launcher is not None:
                self._launcher.stop(fast)
                code = await asyncio.shield(self._serve)
        finally:
            if self.session is not None:
                self.session.drain()
            if self._feed is not None:
                self._feed.cancel()
                with contextlib.suppress(BaseException):
                    await self._feed
            await self.tg.close()
        return code
