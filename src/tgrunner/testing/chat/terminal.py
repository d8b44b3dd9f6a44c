"""The terminal of ``tgrunner chat``: typed lines in, the bot's answers out, as they come.

The main thread reads lines (with ``input()``, so readline editing and history work in a real
terminal) and hands each to a :class:`~.app.ChatApp` running on an event loop in a second
thread. Keeping the reader on the main thread means Ctrl-C arrives there as
``KeyboardInterrupt`` in the middle of ``input()``, and readline restores the terminal itself.

- Interactive (stdin and stdout are a terminal): a prompt (``You> ``, ``You @ Friends> ``);
  the bot's lines appear as they come, above the line being typed, which is drawn again.
- Piped (``printf 'hi\\n/quit\\n' | tgrunner chat bot:router``): no prompt; each line is
  echoed after the prompt text, then the bot is given time to handle it (at most
  ``reply_timeout`` seconds) before the next line is read, so the output is a transcript in
  order and ``/press`` finds the keyboard the previous line asked for.

``/quit``, end of input (Ctrl-D), Ctrl-C (SIGINT) and SIGTERM stop the bot cleanly; a second
Ctrl-C during the stop makes it a fast one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TextIO

from tgrunner.settings import Settings
from tgrunner.testing.chat.app import ChatApp
from tgrunner.testing.chat.commands import help_lines
from tgrunner.testing.chat.screen import Screen, logging_to, start_deaf

__all__ = ["Terminal", "run_chat"]


class _Loop:
    """The event loop thread that runs the :class:`ChatApp`.

    The main thread and this one each raise a flag before they look at the other's, so that
    when the bot stops on its own, either the main thread sees it before it blocks for a line,
    or this thread sees the main thread blocked and wakes it.
    """

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.result: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.quitting = False  # the main thread asked to quit
        self.ended = False  # the bot stopped (on its own or asked to)
        self.main_reading = False  # the main thread waits for a line (it may be woken)
        self._quit: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="tgrunner-chat", daemon=True)

    def start(self) -> None:
        start_deaf(self._thread)

    def _run(self) -> None:
        try:
            self.result.set_result(asyncio.run(self._main()))
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            self.result.set_exception(exc)
        if not self.ready.done():
            self.ready.cancel()  # stopped during start-up

    async def _main(self) -> int:
        self.loop = asyncio.get_running_loop()
        quit_ = self._quit = asyncio.Event()
        if self.quitting:
            quit_.set()
        app = self.app
        quitting = asyncio.ensure_future(quit_.wait())
        try:
            starting = asyncio.ensure_future(app.start())
            await asyncio.wait({starting, quitting}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                # Ctrl-C during start-up: start() stops whatever it started when cancelled.
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return 0
            await starting
            self.ready.set_result(None)
            serving = app.serving
            assert serving is not None  # set by start()
            await asyncio.wait({serving, quitting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            quitting.cancel()
        self.ended = True
        if not quit_.is_set() and self.main_reading:
            # The bot stopped on its own while the main thread waits for a line: wake it,
            # the way Ctrl-C would, so the chat ends with the bot's error.
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        return await app.stop()

    def submit(self, coro: Coroutine[Any, Any, bool]) -> bool:
        """Run ``coro`` on the loop and return its result; False once the loop has closed."""
        assert self.loop is not None
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):
            coro.close()
            return False

    def request_quit(self) -> None:
        """Ask for a clean stop (from the main thread)."""
        self.quitting = True
        loop, quit_ = self.loop, self._quit
        if loop is not None and quit_ is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just closed: nothing to stop
                loop.call_soon_threadsafe(quit_.set)

    def request_fast_stop(self) -> None:
        runner = self.app.runner
        if runner is not None:
            runner.stop(fast=True)


def _banner(app: ChatApp) -> list[str]:
    bot = app.bot_user
    return [
        f"tgrunner chat: @{bot.get('username')} ({bot.get('first_name')}), "
        f"{app.frontend} front-end, against an embedded FakeTelegram at {app.tg.api_url}",
        f'You are "{app.user_name}" in a private chat with the bot. Type a message and press '
        "Enter; lines starting with / go to the bot as commands, except these chat commands:",
        *help_lines(),
        "Quit with /quit, Ctrl-D or Ctrl-C.",
    ]


class Terminal:
    """The chat at a terminal: reads lines from ``stdin`` on the calling (main) thread and
    hands them to ``app``, which runs in its own thread; the app's lines go to ``stdout``, log
    records to ``stderr``.

    It is interactive when ``stdin`` and ``stdout`` are terminals. ``reply_timeout`` (default
    10 s) bounds the wait for the bot after each piped line. The terminal takes over the app's
    ``emit``. SIGTERM stops the chat as Ctrl-C does, when run on the main thread.
    """

    def __init__(
        self,
        app: ChatApp,
        *,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
        reply_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.stdin = stdin
        self.interactive = stdin.isatty() and stdout.isatty()
        self.screen = Screen(stdout, stderr, interactive=self.interactive)
        self.reply_timeout = reply_timeout
        app.emit = self.screen.show
        self._loop = _Loop(app)

    def run(self) -> int:
        """Chat until ``/quit``, end of input, Ctrl-C or SIGTERM; return the runner's exit code
        (0 after a clean stop). Raises what stopped the bot from starting or made it fail
        (:class:`~tgrunner.errors.ConfigError` for a target that cannot run)."""
        readline: Any = None
        if self.interactive:
            with contextlib.suppress(ImportError):
                # Line editing and history for input().
                readline = importlib.import_module("readline")
        self.screen.use_readline(readline)
        try:
            with logging_to(self.screen), _sigterm_as_interrupt():
                return self._run()
        finally:
            self.screen.use_readline(None)

    def _run(self) -> int:
        loop, screen = self._loop, self.screen
        loop.start()
        try:
            loop.ready.result()
        except KeyboardInterrupt:
            loop.request_quit()
            return self._finish()
        screen.show(_banner(self.app))
        try:
            self._converse()
        except KeyboardInterrupt:
            if self.interactive:
                screen.out.write("\n")
        screen.show([self._stopping()])
        loop.request_quit()
        return self._finish()

    def _read(self, prompt: str) -> str | None:
        """One line without its newline; None at the end of input, or once the bot stopped."""
        loop, screen = self._loop, self.screen
        loop.main_reading = True
        try:
            if loop.ended:
                return None
            if self.interactive:
                screen.begin_prompt(prompt)
                try:
                    return input(prompt)
                except EOFError:
                    screen.out.write("\n")
                    return None
                finally:
                    screen.end_prompt()
            line = self.stdin.readline()
            return line.rstrip("\n") if line else None
        finally:
            loop.main_reading = False

    def _converse(self) -> None:
        app, loop = self.app, self._loop
        settle = None if self.interactive else self.reply_timeout
        while True:
            session = app.session
            assert session is not None  # the app has started
            line = self._read(session.prompt)
            if line is None:
                return
            if not self.interactive:
                self.screen.show([session.prompt + line])
            if loop.ended or not loop.submit(app.submit(line, settle=settle)):
                return

    def _stopping(self) -> str:
        if self._loop.ended and not self._loop.quitting:
            return "-- the bot stopped"
        runner = self.app.runner
        running = runner.scheduler.running if runner is not None else 0
        if runner is None or not running:
            return "-- stopping the bot"
        return (
            f"-- stopping the bot: {running} handler(s) still running get up to "
            f"{runner.settings.grace:g} s to finish (Ctrl-C again stops them at once)"
        )

    def _finish(self) -> int:
        """Wait for the clean stop; a further Ctrl-C makes it a fast one."""
        while True:
            try:
                code: int = self._loop.result.result()
            except KeyboardInterrupt:
                if self.interactive:
                    self.screen.out.write("\n")  # below the ^C the terminal echoed
                self.screen.show(["-- stopping at once"])
                self._loop.request_fast_stop()
                continue
            return code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt on the main thread for the block (a clean stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_chat(
    target: str | Any,
    *,
    settings: Settings | None = None,
    options: dict[str, Any] | None = None,
    user_name: str = "You",
    reply_timeout: float = 10.0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    export_token: bool = False,
) -> int:
    """Chat with the bot at ``target`` (an import string, or the bot object) until ``/quit``,
    end of input or Ctrl-C; return the runner's exit code (0 after a clean stop).

    ``settings`` (default ``Settings.from_env()``) and ``options`` (front-end options) go to
    :func:`~tgrunner.runtime.build.build_launcher`; ``export_token`` is :class:`ChatApp`'s.
    ``user_name`` (default ``"You"``) is the first user's name; ``reply_timeout`` (default
    10 s) bounds the wait for the bot after each piped line. Streams default to
    ``sys.stdin``/``sys.stdout``/``sys.stderr``; the chat is interactive when stdin and stdout
    are terminals. Raises what stops the bot from starting
    (:class:`~tgrunner.errors.ConfigError` for a target that cannot run) or made it fail.
    """
    app = ChatApp(
        target,
        settings=settings,
        options=options,
        user_name=user_name,
        export_token=export_token,
    )
    terminal = Terminal(
        app,
        stdin=stdin or sys.stdin,
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
        reply_timeout=reply_timeout,
    )
    return terminal.run()
