"""The output side of the terminal chat: :class:`Screen` writes lines from any thread without
garbling the line being typed, :func:`logging_to` routes console logging through it, and
:func:`start_deaf` starts threads that leave Ctrl-C and SIGTERM to the main thread."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["Screen", "interrupt_main_soon", "logging_to", "start_deaf"]


class Screen:
    """Lines out, from any thread, without garbling the line being typed.

    ``interactive``: a terminal with a prompt. While the person types (between
    :meth:`prompt_shown` and :meth:`end_prompt`), each batch of lines clears the prompt's line,
    is written, and draws the prompt and what was typed so far (readline's buffer) again.

    Lines that come after :meth:`begin_prompt` and before readline has drawn the prompt (its
    pre-input hook calls :meth:`prompt_shown`) are held back until then: written in between,
    they would mix with the prompt. Without readline there is no such hook, and no waiting.
    """

    def __init__(self, out: TextIO, err: TextIO, *, interactive: bool) -> None:
        self.out = out
        self.err = err
        self.interactive = interactive
        self.prompt = ""
        self.reading = False
        self._lock = threading.Lock()
        self._awaiting = False  # begin_prompt() was called, the prompt is not drawn yet
        self._held: list[tuple[list[str], bool]] = []
        self._readline: Any = None

    def show(self, lines: list[str], *, err: bool = False) -> None:
        """Write ``lines`` (to stderr with ``err``), above the prompt when one is shown."""
        with self._lock:
            if self._awaiting:
                self._held.append((lines, err))
            else:
                self._write(lines, err)

    def _write(self, lines: list[str], err: bool) -> None:
        stream = self.err if err else self.out
        redraw = self.interactive and self.reading
        if redraw:
            self.out.write("\r\x1b[K")  # back to the line's start, and clear it
            self.out.flush()
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()
        if redraw:
            typed = self._readline.get_line_buffer() if self._readline is not None else ""
            self.out.write(self.prompt + typed)
            self.out.flush()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for lines, err in held:
            self._write(lines, err)

    def use_readline(self, readline: Any) -> None:
        """Redraw readline's buffer, and hook the prompt's display (None: stop)."""
        if self._readline is not None:
            self._readline.set_pre_input_hook(None)
        self._readline = readline
        if readline is not None:
            readline.set_pre_input_hook(self.prompt_shown)

    def begin_prompt(self, prompt: str) -> None:
        """``input(prompt)`` comes next."""
        with self._lock:
            self.prompt = prompt
            self._awaiting = self._readline is not None

    def prompt_shown(self) -> None:
        """The prompt is on the screen: from now on, lines go above it."""
        try:
            with self._lock:
                self._awaiting = False
                self.reading = True
                self._release_held()
        except KeyboardInterrupt:
            # readline ignores what its hooks raise: Ctrl-C must come again, once readline
            # waits for keys.
            interrupt_main_soon()

    def end_prompt(self) -> None:
        """``input()`` returned or raised."""
        with self._lock:
            self._awaiting = False
            self.reading = False
            self._release_held()


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start_deaf(thread: threading.Thread) -> None:
    """Start ``thread`` with SIGINT and SIGTERM blocked in it (and in the threads it starts).

    The kernel gives a process's signal to any thread that does not block it. Only the main
    thread wakes from ``input()`` on a signal, so it must be the one to get Ctrl-C.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def interrupt_main_soon() -> None:
    """SIGINT to the main thread in 50 ms, from a thread that does not take it itself."""
    ident = threading.main_thread().ident or 0
    start_deaf(threading.Timer(0.05, signal.pthread_kill, (ident, signal.SIGINT)))


class _LogToScreen(logging.Handler):
    """Log records to stderr through the :class:`Screen`, so they do not break the prompt."""

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.screen = screen
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.screen.show(self.format(record).split("\n"), err=True)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logging_to(screen: Screen) -> Iterator[None]:
    """Route the root logger's console output (its handlers writing to stdout or stderr)
    through ``screen`` for the block."""
    root = logging.getLogger()
    streams = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
    consoles = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and id(getattr(h, "stream", None)) in streams
    ]
    ours = _LogToScreen(screen)
    for handler in consoles:
        root.removeHandler(handler)
    root.addHandler(ours)
    try:
        yield
    finally:
        root.removeHandler(ours)
        for handler in consoles:
            root.addHandler(handler)
