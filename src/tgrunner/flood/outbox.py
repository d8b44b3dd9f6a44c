"""The broadcast outbox: every broadcast of a bot, and where each of its chats stands, in one
SQLite file, ``<data dir>/<bot id>/broadcasts.sqlite``.

A broadcast::

    running ──pause──▶ paused ──resume──▶ running
       │                  │
       ├──────cancel──────┴──▶ cancelled
       └──(no chat left)──▶ done

A recipient (one chat of a broadcast)::

    pending ──take──▶ inflight ──its answer──▶ sent | blocked | missing | failed
       ▲                 │
       └─────────────────┴── a 429, a 5xx, a request that provably did not leave; or its
                             sender died (the next claim puts every inflight chat back)

- **At most the window again.** :meth:`Outbox.step` writes, in one transaction, the answers of
  the sends that ended and marks the next chats inflight, before they are sent. A crash
  (SIGKILL included) leaves at most the chats that were inflight: they are sent again when the
  broadcast is resumed, and those whose message had left are the only duplicates.
- **One sender per broadcast.** A process sends a broadcast only while it holds its lock: an
  exclusive ``flock`` on ``<file>.owners/<token>``, taken before the broadcast's row is even
  written (:meth:`Outbox.create`) or before a resume (:meth:`Outbox.claim`). The kernel drops
  it when the process dies, so a dead sender's broadcast can be taken at once by the next
  start (a worker process's, or the bot's), and never by two.
- **Counts** per state live in the broadcast's row, changed in the same transactions as the
  recipients, so :meth:`Outbox.progress` is one row read, whatever the size of the broadcast.
- **Control.** :meth:`Outbox.set_state` (``tgrunner broadcast pause|resume|cancel``) commits the
  new state, then rings the file's doorbell (:mod:`tgrunner._doorbell`): a sender waiting on it
  sees it at once; a sender that is sending sees it at its next step.
- **From an event loop.** The small calls (``step``, ``claim``, ``set_state``, ``progress``)
  may run on the loop without a thread through :meth:`Outbox.run` (see :mod:`tgrunner._sqlite`).
  :meth:`Outbox.create` writes every chat in one transaction on a connection of its own: call
  it in a thread (``asyncio.to_thread``); the loop's connection stays free meanwhile.
- **Sync.** WAL, ``synchronous=NORMAL``: every commit survives a process crash, not a power
  loss.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import orjson

from tgrunner._doorbell import Doorbell, wake_folder
from tgrunner._sqlite import Database
from tgrunner.errors import ConfigError
from tgrunner.flood.records import (
    LIVE_STATES,
    RECIPIENT_STATES,
    BroadcastRecord,
    BroadcastState,
    Progress,
    RecipientState,
    Result,
    Step,
    check_chat_ids,
)
from tgrunner.intake.options import IntakeOptions, bot_dir

__all__ = ["OUTBOX_FILE", "Claim", "Outbox"]

R = TypeVar("R")

OUTBOX_FILE = "broadcasts.sqlite"
"""The outbox's file name in the bot's folder of the data dir."""

# From a control action to (the states it applies to, the state it sets).
_CONTROL: dict[str, tuple[tuple[str, ...], BroadcastState]] = {
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "cancel": (("running", "paused"), "cancelled"),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS broadcasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    state TEXT NOT NULL,
    text TEXT,
    params BLOB NOT NULL,
    build TEXT,
    paid INTEGER NOT NULL,
    total INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    inflight INTEGER NOT NULL DEFAULT 0,
    sent INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0,
    missing INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    rate REAL NOT NULL DEFAULT 0,
    beat REAL,
    owner INTEGER,
    ended REAL
);
CREATE TABLE IF NOT EXISTS recipients (
    broadcast INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    chat_id NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    message_id INTEGER,
    error TEXT,
    PRIMARY KEY (broadcast, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_pending ON recipients (broadcast, seq)
    WHERE state = 'pending';
"""

_PROGRESS = (
    "id, state, total, pending, inflight, sent, blocked, missing, failed, rate, created, beat, "
    "ended, owner"
)
_COUNTS = RECIPIENT_STATES


class Claim:
    """This process's hold on one broadcast (its lock), ``broadcast_id``. :meth:`release`
    when done with it."""

    def __init__(self, broadcast_id: int, path: Path, fd: int, requeued: int = 0) -> None:
        self.broadcast_id = broadcast_id
        self.path = path
        self.requeued = requeued
        """Chats that were inflight when the broadcast was taken: sent again."""
        self._fd: int | None = fd

    def release(self, *, ended: bool = False) -> None:
        """Give the broadcast up; with ``ended`` (done or cancelled) its lock file is deleted
        too. Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if ended:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(fd)


def _lock(path: Path) -> int | None:
    """An exclusive flock on ``path`` (created), or None when another holds it. Tried twice,
    5 ms apart, so that a ``status`` probing it at that moment does not make a claim fail."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for attempt in range(2):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
        if attempt == 0:
            time.sleep(0.005)
    os.close(fd)
    return None


class Outbox:
    """The broadcasts of one bot in the SQLite file ``path`` (created with its schema when
    missing; its folder must exist). ``busy_timeout``: seconds a write waits for another
    process's (default 10). Methods are synchronous and thread-safe; see the module doc for
    calling them from an event loop. Raises :class:`~tgrunner.errors.ConfigError` when the
    file cannot be opened."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"Cannot open the broadcast outbox {self.path}: its folder {self.path.parent} "
                "does not exist. Create it, or pass another path."
            )
        self.busy_timeout = busy_timeout
        try:
            self._db = Database(
                self.path, schema=_SCHEMA, busy_timeout=busy_timeout, name="the outbox"
            )
        except sqlite3.Error as exc:
            raise ConfigError(
                f"Cannot open the broadcast outbox {self.path}: {exc}. Pass a writable path on "
                "a local disk (SQLite locking does not work over NFS)."
            ) from exc
        self.owners = self.path.with_name(self.path.name + ".owners")
        self.bell = Doorbell(wake_folder(self.path))

    @classmethod
    def for_bot(cls, bot_id: int, data_dir: str | Path | None = None) -> Outbox:
        """The outbox of bot ``bot_id`` in ``data_dir`` (default ``$TGRUNNER_DATA_DIR``, else
        ``./.tgrunner``): ``<data dir>/<bot id>/broadcasts.sqlite``, its folder created."""
        root = None if data_dir is None else str(data_dir)
        return cls(bot_dir(IntakeOptions(data_dir=root), bot_id) / OUTBOX_FILE)

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def run(self, method: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``method(*args, **kwargs)``, a method of this outbox, on the running event loop
        without a thread (a busy file is waited for with ``asyncio.sleep``)."""
        return await self._db.run(method, *args, **kwargs)

    # -- writing a broadcast ----------------------------------------------------------------

    def create(
        self,
        chat_ids: Iterable[Any],
        *,
        text: str | None = None,
        params: Mapping[str, Any] | None = None,
        build: str | None = None,
        paid: bool = False,
    ) -> Claim:
        """Write a new running broadcast to ``chat_ids`` (checked by :func:`check_chat_ids`:
        each once, in order) and return this process's claim on it (``claim.broadcast_id``).
        One transaction on a connection of its own: call it in a thread for a long list."""
        chats = check_chat_ids(chat_ids)
        try:
            body = orjson.dumps(dict(params or {}))
        except TypeError as exc:
            raise ConfigError(
                f"the broadcast's parameters cannot be stored ({exc}): pass plain data (str, "
                "numbers, lists, dicts), not files; send a file once and broadcast its file_id"
            ) from None
        token = uuid.uuid4().hex
        self.owners.mkdir(exist_ok=True)
        lock = self.owners / token
        fd = _lock(lock)
        assert fd is not None  # a new file nobody else knows
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            try:
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("BEGIN IMMEDIATE")
                broadcast_id = db.execute(
                    "INSERT INTO broadcasts (token, created, state, text, params, build, paid, "
                    "total, pending, owner) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id",
                    (token, time.time(), text, body, build, int(paid), len(chats), len(chats),
                     os.getpid()),
                ).fetchone()[0]  # fmt: skip
                db.executemany(
                    "INSERT INTO recipients (broadcast, seq, chat_id) VALUES (?, ?, ?)",
                    ((broadcast_id, seq, chat) for seq, chat in enumerate(chats)),
                )
                db.execute("COMMIT")
            finally:
                db.close()
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)
            raise
        return Claim(int(broadcast_id), lock, fd)

    def claim(self, broadcast_id: int) -> Claim | None:
        """Take a running or paused broadcast that no live process holds, putting its inflight
        chats back to pending (their sender died); None when it is held, ended or absent."""
        rows = self._db.read("SELECT token, state FROM broadcasts WHERE id = ?", (broadcast_id,))
        if not rows or rows[0][1] not in LIVE_STATES:
            return None
        self.owners.mkdir(exist_ok=True)
        lock = self.owners / rows[0][0]
        fd = _lock(lock)
        if fd is None:
            return None
        try:
            with self._db.transaction() as db:
                found = db.execute(
                    "SELECT state FROM broadcasts WHERE id = ?", (broadcast_id,)
                ).fetchone()
                if found is None or found[0] not in LIVE_STATES:
                    os.close(fd)
                    return None
                back = db.execute(
                    "UPDATE recipients SET state = 'pending' "
                    "WHERE broadcast = ? AND state = 'inflight'",
                    (broadcast_id,),
                ).rowcount
                db.execute(
                    "UPDATE broadcasts SET pending = pending + ?, inflight = 0, owner = ? "
                    "WHERE id = ?",
                    (back, os.getpid(), broadcast_id),
                )
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        return Claim(broadcast_id, lock, fd, back)

    def step(
        self, broadcast_id: int, results: Sequence[Result], take: int, *, rate: float = 0.0
    ) -> Step:
        """One transaction of the broadcast's sender: write ``results`` (of inflight chats
        only; others are left as they are), then, while the broadcast is running, mark up to
        ``take`` pending chats inflight and return them. A running broadcast with nothing
        pending or inflight left, asked to ``take``, becomes done. ``rate`` is stored for
        ``status``."""
        with self._db.transaction() as db:
            row = db.execute(
                f"SELECT {_PROGRESS} FROM broadcasts WHERE id = ?", (broadcast_id,)
            ).fetchone()
            if row is None:
                raise ConfigError(f"there is no broadcast {broadcast_id} in {self.path}")
            counts = dict(zip(_COUNTS, row[3:9], strict=True))
            state = row[1]
            for result in results:
                n = db.execute(
                    "UPDATE recipients SET state = ?, message_id = ?, error = ? "
                    "WHERE broadcast = ? AND seq = ? AND state = 'inflight'",
                    (result.state, result.message_id, result.error, broadcast_id, result.seq),
                ).rowcount
                if n:
                    counts["inflight"] -= 1
                    counts[result.state] += 1
            taken: list[tuple[int, int | str]] = []
            if state == "running" and take > 0:
                taken = sorted(
                    db.execute(
                        "UPDATE recipients SET state = 'inflight' WHERE broadcast = ? AND seq IN "
                        "(SELECT seq FROM recipients WHERE broadcast = ? AND state = 'pending' "
                        "ORDER BY seq LIMIT ?) RETURNING seq, chat_id",
                        (broadcast_id, broadcast_id, take),
                    ).fetchall()
                )
                counts["pending"] -= len(taken)
                counts["inflight"] += len(taken)
            now = time.time()
            ended = row[12]
            if state == "running" and take > 0 and counts["pending"] + counts["inflight"] == 0:
                state, ended = "done", now
            db.execute(
                "UPDATE broadcasts SET state = ?, pending = ?, inflight = ?, sent = ?, "
                "blocked = ?, missing = ?, failed = ?, rate = ?, beat = ?, ended = ? WHERE id = ?",
                (state, *(counts[c] for c in _COUNTS), rate, now, ended, broadcast_id),
            )
        progress = Progress(
            broadcast_id, state, row[2], counts["pending"], counts["inflight"], counts["sent"],
            counts["blocked"], counts["missing"], counts["failed"], rate, row[10], now, ended,
            row[13],
        )  # fmt: skip
        return Step(taken, progress)

    # -- control ----------------------------------------------------------------------------

    def set_state(self, broadcast_id: int, action: str) -> tuple[bool, str | None]:
        """``action`` (``"pause"``, ``"resume"`` or ``"cancel"``) on a broadcast, then a ring of
        the doorbell, so its sender sees it at once. Returns whether it applied and the state
        the broadcast is in now (None: no such broadcast)."""
        if action not in _CONTROL:
            raise ConfigError(f"{action!r} is not one of {', '.join(_CONTROL)}")
        allowed, new = _CONTROL[action]
        with self._db.transaction() as db:
            row = db.execute(
                "SELECT state FROM broadcasts WHERE id = ?", (broadcast_id,)
            ).fetchone()
            if row is None:
                return False, None
            if row[0] not in allowed:
                return False, str(row[0])
            db.execute(
                "UPDATE broadcasts SET state = ?, ended = ? WHERE id = ?",
                (new, time.time() if new == "cancelled" else None, broadcast_id),
            )
        self.bell.ring()
        return True, new

    # -- reading ----------------------------------------------------------------------------

    def progress(self, broadcast_id: int) -> Progress | None:
        """Where the broadcast stands, or None when there is none by that id."""
        rows = self._db.read(f"SELECT {_PROGRESS} FROM broadcasts WHERE id = ?", (broadcast_id,))
        return Progress(*rows[0]) if rows else None

    def listing(self, limit: int = 20) -> list[Progress]:
        """The newest broadcasts first, at most ``limit`` (default 20)."""
        rows = self._db.read(
            f"SELECT {_PROGRESS} FROM broadcasts ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [Progress(*row) for row in rows]

    def live(self) -> list[int]:
        """The ids of the running and paused broadcasts, oldest first."""
        rows = self._db.read(
            "SELECT id FROM broadcasts WHERE state IN ('running', 'paused') ORDER BY id"
        )
        return [int(row[0]) for row in rows]

    def record(self, broadcast_id: int) -> BroadcastRecord | None:
        """What the broadcast sends, or None when there is none by that id."""
        rows = self._db.read(
            "SELECT id, token, text, params, build, paid FROM broadcasts WHERE id = ?",
            (broadcast_id,),
        )
        if not rows:
            return None
        bid, token, text, params, build, paid = rows[0]
        return BroadcastRecord(bid, token, text, orjson.loads(params), build, bool(paid))

    def chats(
        self, broadcast_id: int, state: RecipientState, limit: int | None = None
    ) -> list[tuple[int | str, int | None, str | None]]:
        """The chats of the broadcast in ``state``, in its order, as ``(chat_id, message_id,
        error)``; at most ``limit`` (default None: all). ``chats(id, "blocked")`` lists the
        chats that blocked the bot, to drop them from a mailing list."""
        rows = self._db.read(
            "SELECT chat_id, message_id, error FROM recipients WHERE broadcast = ? AND state = ? "
            "ORDER BY seq LIMIT ?",
            (broadcast_id, state, -1 if limit is None else limit),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def held(self, broadcast_id: int) -> bool:
        """Whether a live process holds the broadcast (is sending it, or waits while paused)."""
        rows = self._db.read("SELECT token FROM broadcasts WHERE id = ?", (broadcast_id,))
        if not rows:
            return False
        try:
            fd = os.open(self.owners / rows[0][0], os.O_RDONLY)
        except OSError:
            return False  # no lock file: nobody took it since it ended, or ever
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's shared lock, if it got one
        return False

    def purge(self, older_than: float) -> int:
        """Delete the broadcasts that ended (done or cancelled) more than ``older_than``
        seconds ago, with their chats; return how many."""
        with self._db.transaction() as db:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT id FROM broadcasts WHERE state IN ('done', 'cancelled') AND ended < ?",
                    (time.time() - older_than,),
                )
            ]
            for broadcast_id in ids:
                db.execute("DELETE FROM recipients WHERE broadcast = ?", (broadcast_id,))
                db.execute("DELETE FROM broadcasts WHERE id = ?", (broadcast_id,))
        return len(ids)
