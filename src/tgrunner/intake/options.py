"""Where the intake keeps updates: the journal in the bot's data dir (default), or nothing.

The data dir is ``--data-dir`` (``TGRUNNER_DATA_DIR``), default ``./.tgrunner/``, with one
subfolder per bot id that holds everything durable needing no server: the intake journal now,
the embedded job queue and state store later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tgrunner.errors import ConfigError

__all__ = ["DEFAULT_DATA_DIR", "IntakeOptions", "bot_dir", "data_dir", "journal_path"]

DEFAULT_DATA_DIR = "./.tgrunner"
JOURNAL_FILE = "journal.sqlite3"


@dataclass(frozen=True, slots=True)
class IntakeOptions:
    """Options of the intake.

    - ``journal``: keep the durable intake journal, default True. False gives strict offsets:
      the offset confirmed to Telegram never passes an unfinished update, so at most 100
      updates are in flight.
    - ``data_dir``: the folder of every bot's durable files; default None, meaning
      ``$TGRUNNER_DATA_DIR``, else ``./.tgrunner``. Created when missing.
    - ``journal_path``: an explicit journal file instead of ``<data_dir>/<bot id>/journal.sqlite3``;
      its folder must exist (it is never created). Default None.
    - ``journal_sync``: ``"normal"`` (default; survives a process crash) or ``"full"`` (also a
      power loss: an fsync per commit, on a writer thread).
    """

    journal: bool = True
    data_dir: str | None = None
    journal_path: str | None = None
    journal_sync: str = "normal"

    def __post_init__(self) -> None:
        if self.journal_sync not in ("normal", "full"):
            raise ConfigError(f"journal sync must be 'normal' or 'full', not {self.journal_sync!r}")
        if self.journal_path is not None and not self.journal:
            raise ConfigError("a journal path was given together with no journal; pick one")


def _writable_dir(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the {what} {path}: {exc.strerror}.") from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(
            f"The {what} {path} is not a writable folder. Fix its permissions, or pass "
            "another --data-dir."
        )
    return path


def data_dir(options: IntakeOptions) -> Path:
    """The data dir: ``options.data_dir``, else ``$TGRUNNER_DATA_DIR``, else ``./.tgrunner``
    (neither created nor checked)."""
    return Path(options.data_dir or os.environ.get("TGRUNNER_DATA_DIR") or DEFAULT_DATA_DIR)


def bot_dir(options: IntakeOptions, bot_id: int) -> Path:
    """``<data dir>/<bot id>``, created when missing; ConfigError when it cannot be written."""
    root = data_dir(options)
    _writable_dir(root, "data dir")
    return _writable_dir(root / str(bot_id), "data dir")


def journal_path(options: IntakeOptions, bot_id: int) -> Path:
    """The journal file of this bot: the explicit path, else the one in its data dir."""
    if options.journal_path is not None:
        path = Path(options.journal_path)
        if not path.parent.is_dir():
            raise ConfigError(
                f"The journal's folder {path.parent} does not exist. Create it, or pass "
                "another --journal path."
            )
        return path
    return bot_dir(options, bot_id) / JOURNAL_FILE
