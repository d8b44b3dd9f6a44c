"""``tgrunner chat module:attr``: talk to a bot in the terminal, offline, against an embedded
FakeTelegram. The chat itself lives in :mod:`tgrunner.testing.chat`, imported only when the
command runs, so building the parser never imports ``tgrunner.testing``."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from tgrunner.cli import run as run_cmd
from tgrunner.cli.options import settings_from
from tgrunner.errors import UserCodeError
from tgrunner.settings import Settings

__all__ = ["add_parser"]

_DESCRIPTION = """\
Talk to your bot in the terminal, offline. tgrunner starts an embedded FakeTelegram (a fake
Bot API server on loopback), runs the bot against it in this process, exactly as 'tgrunner
run' would run it (a tgrunner Router, an 'async def handler(update, bot)', an aiogram
Dispatcher, a python-telegram-bot Application, or a factory returning one of them), and
lets you write to it as a simulated user. Nothing reaches Telegram; no token is needed.

You start as the user "You" (see --user) in a private chat with the bot. Each line you type
is sent as a message. A line starting with / goes to the bot as a bot command (/start,
/help), except the chat commands below. The bot's answers appear as they come: text,
captions, the kind of media ([photo], [document report.pdf], [sticker], [location ...],
[poll ...]), edits of its messages as "bot (edited): ...", deletions, and its answers to
button presses. Inline keyboards are shown as numbered buttons ([1] Yes  [2] No); URL
buttons are shown as links and cannot be pressed. Reply keyboards are numbered too.

Chat commands:
  /press N               press button N of the bot's latest keyboard in this chat (an
                         inline button sends a callback query; a reply-keyboard button
                         sends its text)
  /as NAME               talk as the user NAME (created on first use), in the same kind of
                         chat: in a group you stay in the group
  /group NAME            talk in the group NAME (created on first use, with you and the bot
                         as members)
  /private               back to your private chat with the bot
  /photo [CAPTION]       send a photo
  /document [FILE NAME]  send a file (default report.pdf)
  /sticker [EMOJI]       send a sticker (default 👍)
  /location [LAT LON]    send a location (default 51.5007 -0.1246)
  /edit TEXT             edit your last message in this chat
  /quit                  stop the bot and leave (also Ctrl-D, Ctrl-C)
  /?                     list these commands
  //TEXT                 send /TEXT to the bot as it is, for a bot command named like a
                         chat command (//press sends /press)

When standard input is not a terminal (a pipe or a file), each line is echoed and the chat
waits until the bot has handled it (at most --reply-timeout seconds) before reading the next,
so a script gets a transcript in order. /quit, the end of input (Ctrl-D), Ctrl-C and SIGTERM
stop the bot cleanly; a second Ctrl-C stops it at once."""

_EPILOG = """\
defaults: strict offsets (as with 'tgrunner run --no-journal'): no journal and no data dir,
so a chat leaves no .tgrunner folder behind; the bot's state store is in memory for the
chat's length (TGRUNNER_STATE names another). Logging goes to stderr at WARNING, so the bot's
log lines do not crowd the chat; 'tgrunner -v chat ...' shows debug logs.

environment: TGRUNNER_CONCURRENCY, TGRUNNER_HANDLER_TIMEOUT, TGRUNNER_GRACE,
TGRUNNER_STOP_BUDGET, TGRUNNER_ALLOWED_UPDATES and the other TGRUNNER_* settings of
'tgrunner run' apply (the options above win over them). The bot token and the API URL
(TGRUNNER_TOKEN, BOT_TOKEN, TGRUNNER_API_URL) are ignored: the chat always uses the embedded
FakeTelegram's.

exit codes: 0 after a clean stop; 1 after a fast stop (a second Ctrl-C) or when the bot
failed; 2 for a target that cannot run or a bad option, with one line on stderr.

examples:
  tgrunner chat mybot:router
  tgrunner chat quick:dp --user Alice
  tgrunner chat echobot:application --own-http
  printf '/start\\n/press 1\\n/quit\\n' | tgrunner chat mybot:router"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``chat`` command."""
    p = sub.add_parser(
        "chat",
        help="talk to your bot in the terminal, offline, against an embedded FakeTelegram",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target",
        help="the bot, as for 'tgrunner run': 'module:attr' naming a bot object, an entry point "
        "such as main, or a factory",
    )
    p.add_argument(
        "--user",
        default="You",
        metavar="NAME",
        help="the first name of the user you start as (default You)",
    )
    p.add_argument(
        "--reply-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="piped input: how long to wait for the bot to handle a line before reading the "
        "next (default 10)",
    )
    p.add_argument(
        "--concurrency", type=int, metavar="N", help="handlers running at once (default 500)"
    )
    p.add_argument(
        "--handler-timeout",
        type=float,
        metavar="SECONDS",
        help="seconds per handler (default none)",
    )
    p.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        help="seconds to finish in-flight work on stop (default 10)",
    )
    p.add_argument(
        "--stop-budget",
        type=float,
        metavar="SECONDS",
        help="seconds the whole stop may take (default 30)",
    )
    p.add_argument(
        "--own-http",
        action="store_true",
        help="aiogram and PTB bots: keep the framework's own HTTP client instead of "
        "tgrunner's faster one (default: tgrunner's)",
    )
    p.set_defaults(func=_cmd_chat, parser=p)


def _run_options(target: str) -> argparse.Namespace:
    """``tgrunner run TARGET``'s options with their defaults, as ``run`` parses them.

    The chat's settings are built by ``run``'s own :func:`~tgrunner.cli.options.settings_from`;
    starting from ``run``'s defaults gives it every option it reads, present and future.
    """
    parser = argparse.ArgumentParser(add_help=False)
    run_cmd.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["run", target])


def settings_for_chat(args: argparse.Namespace) -> Settings:
    """The environment's settings, this command line's options on top, and strict offsets."""
    options = _run_options(args.target)
    for name in ("concurrency", "handler_timeout", "grace", "stop_budget"):
        setattr(options, name, getattr(args, name))
    options.journal = None
    options.no_journal = True
    settings = settings_from(options)
    if settings.state is None and settings.workers.workers == 1:
        settings = replace(settings, state="memory://")  # no data dir: no state file either
    return settings


def _cmd_chat(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if not args.reply_timeout > 0:
        parser.error("--reply-timeout must be more than 0 seconds")
    if not args.user.strip():
        parser.error("--user must not be empty")
    if not args.verbose and getattr(args, "log_level", None) is None:
        logging.getLogger().setLevel(logging.WARNING)
    settings = settings_for_chat(args)
    from tgrunner.testing.chat.terminal import run_chat

    own = {"session": "aiogram", "request": "ptb"} if args.own_http else {}
    try:
        return run_chat(
            args.target,
            settings=settings,
            options=own,
            user_name=args.user.strip(),
            reply_timeout=args.reply_timeout,
            export_token=True,  # this process is the chat's: BOT_TOKEN is ours to set
        )
    except UserCodeError as exc:
        sys.stderr.write(exc.traceback)  # the user's own frames, as 'tgrunner run' shows them
        raise
