"""``tgrunner broadcast [status|pause|resume|cancel] [ID]``: look at a bot's broadcasts, and
control a running one from a shell."""

from __future__ import annotations

import argparse
import datetime
import sys
import textwrap
import time
from typing import Any

from tgrunner.cli.common import bot_file, bot_id_arg
from tgrunner.errors import ConfigError
from tgrunner.flood.outbox import OUTBOX_FILE, Outbox
from tgrunner.flood.records import Progress, describe, duration

__all__ = ["add_parser"]

DESCRIPTION = """\
Look at the broadcasts a bot sent with bot.broadcast(...), and control a running one.

'status' (the default) shows the newest broadcasts, one line each, or one broadcast in full:
its chats per state (pending, in flight, sent, blocked the bot, missing, failed), its rate
and the time left. 'pause' stops a running broadcast from taking more chats (what is in
flight ends, within about a second), 'resume' continues a paused one, 'cancel' ends one for
good: its chats not sent to yet never are. The bot's sending process sees each at once. A
broadcast whose process is gone continues when the bot starts again.
"""

_FINDING = """\
The outbox is <data dir>/<bot id>/broadcasts.sqlite: the data dir is --data-dir, the bot the
one named by --bot-id or the token (with neither, the only bot there with broadcasts).

exit status: 0 done; 1 a broadcast not in a state for the action (pause a paused one);
2 bad arguments, no outbox there, or no broadcast by that id.

environment:
  TGRUNNER_DATA_DIR           the data dir, when --data-dir is not given (default ./.tgrunner)
  TGRUNNER_TOKEN, BOT_TOKEN   the token, when neither --token nor --bot-id is given
  TGRUNNER_LOG_LEVEL          debug, info (default), warning or error
"""

_EXAMPLES = {
    "broadcast": "  tgrunner broadcast\n  tgrunner broadcast status 3\n"
    "  tgrunner broadcast pause 3\n  tgrunner broadcast cancel --bot-id 123456\n",
    "status": "  tgrunner broadcast status\n  tgrunner broadcast status 3 --data-dir /srv/bots\n",
    "pause": "  tgrunner broadcast pause 3\n  tgrunner broadcast pause     (the only live one)\n",
    "resume": "  tgrunner broadcast resume 3\n",
    "cancel": "  tgrunner broadcast cancel 3 --bot-id 123456\n",
}

_ACTIONS = (
    ("status", "show the newest broadcasts, or one in full",
     "Show the newest broadcasts of the bot, one line each (state, chats done, rate, time "
     "left); with an ID, that broadcast in full. Works while the bot sends."),
    ("pause", "pause a running broadcast",
     "Pause a running broadcast: it takes no more chats until resumed; the sends in flight "
     "end. Without an ID: the only running or paused one."),
    ("resume", "resume a paused broadcast",
     "Resume a paused broadcast where it stopped. Without an ID: the only running or paused "
     "one."),
    ("cancel", "cancel a broadcast for good",
     "Cancel a running or paused broadcast: the chats not sent to yet never are. Without an "
     "ID: the only running or paused one."),
)  # fmt: skip

_VERBS = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}
_FROM = {"pause": "running", "resume": "paused", "cancel": "running or paused"}
_LISTED = 10


def _epilog(name: str) -> str:
    return f"{_FINDING}\nexamples:\n{_EXAMPLES[name]}"


def _broadcast_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a broadcast id (a number, from 1)")
    return int(text)


def _add_finding(p: argparse.ArgumentParser, *, top: bool) -> None:
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the bots' data dir (default $TGRUNNER_DATA_DIR, else ./.tgrunner)",
        **unset,
    )
    p.add_argument(
        "--bot-id",
        type=bot_id_arg,
        metavar="ID",
        help="the bot whose broadcasts to open (default: the token's bot, else the only one)",
        **unset,
    )
    p.add_argument(
        "--token",
        help="the bot's token: its id names the outbox (default $TGRUNNER_TOKEN, else $BOT_TOKEN)",
        **unset,
    )


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``broadcast`` command and its ``status``, ``pause``, ``resume`` and ``cancel``
    actions."""
    p: argparse.ArgumentParser = sub.add_parser(
        "broadcast",
        help="show broadcasts; pause, resume or cancel one",
        description=DESCRIPTION,
        epilog=_epilog("broadcast"),
    )
    _add_finding(p, top=True)
    actions = p.add_subparsers(dest="action", metavar="{status,pause,resume,cancel}")
    for name, text, more in _ACTIONS:
        a = actions.add_parser(
            name, help=text, description=textwrap.fill(more, 92), epilog=_epilog(name)
        )
        a.add_argument(
            "broadcast_id",
            nargs="?",
            type=_broadcast_id,
            metavar="ID",
            help="the broadcast (as bot.broadcast's handle.id); see the description for none",
        )
        _add_finding(a, top=False)
    p.set_defaults(func=_cmd_broadcast, broadcast_id=None)
    return p


def _cmd_broadcast(args: argparse.Namespace) -> int:
    path = bot_file(args, OUTBOX_FILE, "broadcasts")
    with Outbox(path) as outbox:
        action = args.action or "status"
        if action == "status":
            return _status(outbox, args.broadcast_id)
        return _control(outbox, action, args.broadcast_id)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _found(outbox: Outbox, broadcast_id: int) -> Progress:
    progress = outbox.progress(broadcast_id)
    if progress is None:
        raise ConfigError(f"There is no broadcast {broadcast_id} in {outbox.path}.")
    return progress


def _holder(outbox: Outbox, p: Progress) -> str:
    """Who sends the broadcast, in words."""
    if p.state not in ("running", "paused"):
        return f"ended {_when(p.ended)}"
    if outbox.held(p.id):
        verb = "sent" if p.state == "running" else "held"
        since = f", last step {time.time() - p.beat:.1f} s ago" if p.beat else ""
        return f"{verb} by pid {p.owner}{since}"
    return "no process holds it: it continues when the bot starts again"


def _status(outbox: Outbox, broadcast_id: int | None) -> int:
    if broadcast_id is not None:
        return _show(outbox, _found(outbox, broadcast_id))
    shown = outbox.listing(_LISTED)
    live = sum(p.state in ("running", "paused") for p in shown)
    print(f"{outbox.path}: {len(shown)} broadcast(s) shown, newest first ({live} live)")
    for p in shown:
        print(f"  {p.id:>4}  {p.state:<9}  {describe(p)}")
    return 0


def _show(outbox: Outbox, p: Progress) -> int:
    record = outbox.record(p.id)
    assert record is not None
    if record.build is not None:
        sends = f"build {record.build}"
    else:
        text = record.text or ""
        sends = repr(text if len(text) <= 60 else text[:57] + "...")
    if record.params:
        sends += f" with {', '.join(sorted(record.params))}"
    if record.paid:
        sends += " (paid broadcast)"
    rows = [
        ("state", f"{p.state}, {_holder(outbox, p)}"),
        ("created", _when(p.created)),
        ("sends", sends),
        ("chats", str(p.total)),
        *((name, str(n)) for name, n in p.counts().items()),
    ]
    if p.state == "running":
        rows.append(("rate", f"{p.rate:.1f}/s" if p.rate else "-"))
        eta = p.eta
        if eta is not None:
            rows.append(("time left", f"about {duration(eta)} (at {_when(time.time() + eta)})"))
    print(f"broadcast {p.id} in {outbox.path}:")
    for name, value in rows:
        print(f"  {name + ':':<11}{value}")
    return 0


def _control(outbox: Outbox, action: str, broadcast_id: int | None) -> int:
    if broadcast_id is None:
        live = outbox.live()
        if len(live) != 1:
            raise ConfigError(
                f"{outbox.path} has {len(live)} running or paused broadcasts "
                f"({', '.join(map(str, live)) or 'none'}): name the one to {action} by its ID."
            )
        broadcast_id = live[0]
    _found(outbox, broadcast_id)
    applied, state = outbox.set_state(broadcast_id, action)
    if not applied:
        print(
            f"tgrunner: broadcast {broadcast_id} is {state}: only a {_FROM[action]} broadcast "
            f"can be {_VERBS[action]}",
            file=sys.stderr,
        )
        return 1
    p = _found(outbox, broadcast_id)
    held = outbox.held(broadcast_id)
    print(f"broadcast {broadcast_id} {_VERBS[action]}: {describe(p)}")
    if action == "resume" and not held:
        print("  no process holds it: it continues when the bot starts again")
    return 0
