"""A command in a real terminal, for tests: tmux runs it in a pane, the test types with
``send-keys`` and reads the screen with ``capture-pane`` until the expected text shows (polled,
within a deadline: the screen is the only output a terminal gives).

Each pane has its own tmux server on a socket in its own temporary folder (``-S``), killed and
removed at the end, so nothing is left behind and other tmux users are not disturbed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["HAVE_TMUX", "Pane", "needs_tmux"]

HAVE_TMUX = shutil.which("tmux") is not None
"""Whether tmux is installed (it is in CI); tests that need it skip without it."""

needs_tmux = pytest.mark.skipif(not HAVE_TMUX, reason="tmux is not installed")

# The chat's prompt, as the last line of the screen: "You>" or "Bob @ Friends>".
_PROMPT = re.compile(r"^[A-Za-z][^<>\[\]]*>$")


class Pane:
    """A command in a 120×40 tmux pane; after it exits the pane shows ``EXIT=<code>`` and the
    terminal's ``icanon``/``echo`` modes (a chat must leave the terminal as it found it)."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        # Short: a socket path is limited to about 100 characters.
        self.folder = tempfile.mkdtemp(prefix="tgrunner-tmux-")
        self.socket = os.path.join(self.folder, "socket")
        env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "TERM": "xterm"}
        line = " ".join(shlex.quote(part) for part in command)
        modes = "stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '"
        # The shell survives the Ctrl-C it shares with the chat (a trap, unlike an ignored
        # signal, is not inherited), and stays to show how the chat ended.
        shell = f"trap : INT; {line}; echo EXIT=$?; echo MODES=$({modes}); sleep 600"
        exported = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        try:
            self.tmux("new-session", "-d", "-x", "120", "-y", "40", "-c", str(cwd),
                      f"env {exported} sh -c {shlex.quote(shell)}")  # fmt: skip
        except BaseException:
            self.close()
            raise

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def send(self, *keys: str) -> None:
        """Type ``keys`` (tmux key names: ``Enter``, ``C-c``, ``C-d``), literally otherwise."""
        for key in keys:
            if key in ("Enter", "C-c", "C-d"):
                self.tmux("send-keys", key)
            else:
                self.tmux("send-keys", "-l", key)

    def type(self, line: str) -> None:
        """Type ``line`` and Enter once the chat waits at its prompt: keys typed before
        would be echoed by the terminal ahead of the prompt (type-ahead, as in any shell)."""
        self.wait_for_prompt()
        self.send(line, "Enter")

    def wait_for_prompt(self) -> None:
        self.wait(lambda s: _PROMPT.match(s.rstrip().rsplit("\n", 1)[-1]) is not None)

    def screen(self) -> str:
        """The pane's text with its history, wrapped lines joined."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-500")

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen().splitlines() if line.strip()]

    def wait(self, done: Callable[[str], bool] | str, timeout: float = 30.0) -> str:
        """Poll the screen until ``done(screen)`` (or the text ``done`` is on it); return it."""
        check = (lambda s: done in s) if isinstance(done, str) else done
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"not on the screen within {timeout} s:\n{text}")
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)
