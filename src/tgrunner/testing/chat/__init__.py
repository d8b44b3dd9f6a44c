"""``tgrunner chat``: talk to a bot in the terminal, offline, against an embedded FakeTelegram.

- :mod:`.commands`: a typed line becomes a chat command or a message (pure).
- :mod:`.render`: Bot API messages and keyboards become lines (pure).
- :mod:`.session`: who talks where, the keyboards shown, and what the bot did, as lines.
- :mod:`.app`: FakeTelegram, the bot's runner and the session on one event loop.
- :mod:`.screen`: lines out from any thread, above the line being typed.
- :mod:`.terminal`: the terminal itself; :func:`run_chat` is the entry point.
"""

from __future__ import annotations

from tgrunner.testing.chat.terminal import run_chat

__all__ = ["run_chat"]
