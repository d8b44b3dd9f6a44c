"""``tgrunner journal list|retry|drop``: inspect and release quarantined updates.

The command's ``--help`` (:data:`DESCRIPTION`) says what quarantine is and how the journal is
found.
"""

from __future__ import annotations

import argparse
import sqlite3
import textwrap
import time
from pathlib import Path

import orjson

from tgrunner.cli.common import bot_file, bot_id_arg
from tgrunner.errors import ConfigError
from tgrunner.intake.journal import Journal
from tgrunner.intake.options import JOURNAL_FILE

__all__ = ["add_parser"]


DESCRIPTION = """\
Inspect and release quarantined updates.

An update whose handling killed the bot's process 3 times is quarantined: kept in the
journal, but not replayed. 'list' shows them (also while the bot runs), 'retry' puts them
back, to be handled at the next start, and 'drop' forgets them. 'retry' and 'drop' need the
bot stopped.
"""

_FINDING = """\
The journal is found as 'tgrunner run' finds it: --journal PATH, or the bot's folder in the
data dir (the bot named by --bot-id or the token; with neither, the only bot there).

environment:
  TGRUNNER_DATA_DIR           the data dir, when --data-dir is not given (default ./.tgrunner)
  TGRUNNER_TOKEN, BOT_TOKEN   the token, when neither --token nor --bot-id is given
  TGRUNNER_LOG_LEVEL          debug, info (default), warning or error
"""

_EXAMPLES = {
    "journal": "  tgrunner journal list\n  tgrunner journal retry 12345\n"
    "  tgrunner journal drop --all --data-dir /srv/bots --bot-id 123456\n",
    "list": "  tgrunner journal list\n  tgrunner journal list --journal ./journal.sqlite3\n",
    "retry": "  tgrunner journal retry 12345 12346\n  tgrunner journal retry --all\n",
    "drop": "  tgrunner journal drop 12345\n  tgrunner journal drop --all --bot-id 123456\n",
}


def _epilog(name: str) -> str:
    return f"{_FINDING}\nexamples:\n{_EXAMPLES[name]}"


def _update_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an update id (a number)") from None


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``journal`` command and its ``list``, ``retry`` and ``drop`` actions."""
    p: argparse.ArgumentParser = sub.add_parser(
        "journal",
        help="inspect and release quarantined updates",
        description=DESCRIPTION,
        epilog=_epilog("journal"),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="{list,retry,drop}")
    for name, text, more in (
        ("list", "show quarantined updates and how many are waiting",
         "Show the quarantined updates of a bot's journal (id, attempts, since when, kind and "
         "chat), and how many updates wait in it to be handled. Works while the bot runs."),
        ("retry", "put quarantined updates back, to be handled at the next start",
         "Put quarantined updates back in the journal: the bot handles them at its next "
         "start. Stop the bot first."),
        ("drop", "forget quarantined updates",
         "Forget quarantined updates: they are deleted from the journal and never handled. "
         "Stop the bot first."),
    ):  # fmt: skip
        a = actions.add_parser(
            name, help=text, description=textwrap.fill(more, 92), epilog=_epilog(name)
        )
        a.add_argument(
            "--data-dir",
            metavar="DIR",
            help="the bots' data dir (default $TGRUNNER_DATA_DIR, else ./.tgrunner)",
        )
        a.add_argument(
            "--journal",
            metavar="PATH",
            help="an explicit journal file (default: the bot's, in the data dir)",
        )
        a.add_argument(
            "--bot-id",
            type=bot_id_arg,
            metavar="ID",
            help="the bot whose journal to open (default: the token's bot, else the only one)",
        )
        a.add_argument(
            "--token",
            help="the bot's token: its id names the journal (default $TGRUNNER_TOKEN, else "
            "$BOT_TOKEN)",
        )
        if name != "list":
            a.add_argument(
                "update_ids",
                nargs="*",
                type=_update_id,
                metavar="UPDATE_ID",
                help="the quarantined updates to " + name + " (default: none; see --all)",
            )
            a.add_argument(
                "--all",
                action="store_true",
                help="every quarantined update (default: only the ids given)",
            )
        a.set_defaults(func=_cmd_journal)
    return p


def _find(args: argparse.Namespace) -> Path:
    if args.journal:
        path = Path(args.journal)
        if not path.is_file():
            raise ConfigError(f"There is no journal at {path}.")
        return path
    return bot_file(args, JOURNAL_FILE, "journal", whats="journals", also=" or --journal")


def _describe(update: dict[str, object]) -> str:
    kind = next((k for k in update if k != "update_id"), "?")
    payload = update.get(kind)
    chat = payload.get("chat") if isinstance(payload, dict) else None
    where = f" chat {chat.get('id')}" if isinstance(chat, dict) else ""
    return f"{kind}{where}"


def _list(path: Path) -> int:
    # Read-only and without the lock, so it works while the bot runs.
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            waiting = db.execute("SELECT count(*) FROM intake").fetchone()[0]
            rows = db.execute(
                "SELECT update_id, attempts, since, body FROM quarantine ORDER BY since"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"Cannot read the journal {path}: {exc}.") from None
    print(f"{path}: {waiting} update(s) waiting, {len(rows)} quarantined")
    for update_id, attempts, since, body in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        print(f"  {update_id}  {attempts} attempts  since {when}  {_describe(orjson.loads(body))}")
    return 0


def _cmd_journal(args: argparse.Namespace) -> int:
    path = _find(args)
    if args.action == "list":
        return _list(path)
    if not args.update_ids and not args.all:
        raise ConfigError(f"Name the update ids to {args.action}, or pass --all.")
    ids = None if args.all else args.update_ids
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        bot_id = int(db.execute("SELECT value FROM meta WHERE key = 'bot_id'").fetchone()[0])
    finally:
        db.close()
    journal = Journal(path, bot_id=bot_id)
    try:
        n = journal.retry(ids) if args.action == "retry" else journal.drop(ids)
    finally:
        journal.close_now()
    done = "put back; they are handled at the next start" if args.action == "retry" else "dropped"
    print(f"{n} quarantined update(s) {done}")
    return 0
