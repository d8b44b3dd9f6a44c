"""A durable intake journal: updates are written here before Telegram is told to forget them.

Strict polling may confirm only finished updates, and Telegram returns at most 100 updates past
the confirmed offset, so at most 100 can be in flight. With handlers that wait on slow calls
that caps throughput (100 / handler time). With a journal, an update is *durable* once written
here, so the offset sent to Telegram may pass it; the journal keeps it until it has finished,
and a restart replays what had not. Nothing is lost on a crash (SIGKILL included); what was
in flight, plus finish marks not yet written, is handled again.

SQLite in WAL mode, one row per unfinished update. ``synchronous`` is NORMAL by default: a
commit survives the process being killed, not the machine losing power; ``sync="full"`` adds
an fsync per batch for that. Writes are batched: one transaction per fetched batch, and one
for the finish marks gathered since the last batch. It runs on the event loop's thread:
a batch insert costs well under a millisecond, less than a thread hop would. The WAL
checkpoint, which syncs files, is the one slow step: it is taken off the event loop, run by
:meth:`checkpoint` on its own connection in a worker thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from tgrunner.errors import ConfigError

__all__ = ["Journal"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intake (update_id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Journal:
    """Unfinished updates of one bot, on disk.

    - ``path``: the SQLite file (created with its folder when missing).
    - ``bot_id``: the bot it belongs to; opening another bot's journal is refused.
    - ``sync``: ``"normal"`` (default: survives a process crash) or ``"full"`` (also power
      loss, at an fsync per batch).
    """

    def __init__(self, path: str | Path, *, bot_id: int, sync: str = "normal") -> None:
        if sync not in ("normal", "full"):
            raise ConfigError(f"journal sync must be 'normal' or 'full', not {sync!r}")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync.upper()}")
            # Checkpoints sync files; they run in checkpoint(), off the event loop.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                f"Cannot open the intake journal {self.path}: {exc}. Pass a writable path."
            ) from exc
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        owner = meta.get("bot_id")
        if owner is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('bot_id', ?)", (bot_id,))
        elif owner != bot_id:
            self._db.close()
            raise ConfigError(
                f"The intake journal {self.path} belongs to bot {owner}, not {bot_id}. "
                "Give each bot its own journal path."
            )
        self._highest: int = meta.get("highest", -1)
        self._finished: list[tuple[int]] = []
        self._sync = sync.upper()
        self.writes_since_checkpoint = 0

    @property
    def highest(self) -> int:
        """The highest update_id ever journaled (-1 when none): Telegram's offset is one past."""
        return self._highest

    def unfinished(self) -> list[dict[str, Any]]:
        """Updates journaled and not finished, in update_id order (replay them first)."""
        rows = self._db.execute("SELECT body FROM intake ORDER BY update_id").fetchall()
        return [orjson.loads(body) for (body,) in rows]

    def put(self, updates: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write new updates durably in one transaction; return those not journaled before."""
        fresh = [u for u in updates if u["update_id"] > self._highest]
        if not fresh:
            return fresh
        highest = fresh[-1]["update_id"]
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO intake (update_id, body) VALUES (?, ?)",
                [(u["update_id"], orjson.dumps(u)) for u in fresh],
            )
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('highest', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (highest,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._highest = highest
        self.writes_since_checkpoint += 1
        return fresh

    def finished(self, update_id: int) -> None:
        """Mark an update finished; written with the next :meth:`flush`."""
        self._finished.append((update_id,))

    def flush(self) -> None:
        """Write the finish marks gathered so far (one transaction)."""
        if not self._finished:
            return
        done, self._finished = self._finished, []
        db = self._db
        # One transaction: in autocommit mode executemany would commit once per row.
        db.execute("BEGIN")
        try:
            db.executemany("DELETE FROM intake WHERE update_id = ?", done)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._finished[:0] = done
            raise

    def checkpoint(self) -> None:
        """Fold the WAL into the database file, on a connection of its own.

        Safe to call from a worker thread while the event loop keeps writing: a PASSIVE
        checkpoint copies what it can without blocking the writer.
        """
        self.writes_since_checkpoint = 0
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(f"PRAGMA synchronous={self._sync}")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    @property
    def pending(self) -> int:
        """Rows still in the journal (unfinished, or finished but not yet flushed)."""
        return int(self._db.execute("SELECT count(*) FROM intake").fetchone()[0])

    def close(self) -> None:
        """Flush and close. Safe to call twice."""
        if self._db is None:
            return
        try:
            self.flush()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()
            self._db = None  # type: ignore[assignment]
