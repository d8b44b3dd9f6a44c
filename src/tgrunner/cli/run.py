"""``tgrunner run module:attr``: run a bot until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from tgrunner.settings import Settings

if TYPE_CHECKING:
    from tgrunner.runtime.entry import EntryPoint
    from tgrunner.runtime.runner import Runner

__all__ = ["add_parser"]

# Allocations between collections of the youngest generation (CPython's default is 700).
_GC_GEN0 = 10_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``run`` command."""
    p = sub.add_parser("run", help="run a bot from an import string (module:attr)")
    p.add_argument("target", help="the bot: 'module:attr' or 'module:factory'")
    p.add_argument("--token", help="bot token (default: $TGRUNNER_TOKEN or $BOT_TOKEN)")
    p.add_argument(
        "--api-url",
        default=os.environ.get("TGRUNNER_API_URL"),
        help="Bot API server (a self-hosted one, or FakeTelegram); default $TGRUNNER_API_URL, "
        "else the framework bot's own, else https://api.telegram.org",
    )
    p.add_argument("--concurrency", type=int, help="handlers running at once (default 500)")
    p.add_argument("--handler-timeout", type=float, help="seconds per handler (default none)")
    p.add_argument("--grace", type=float, help="seconds to finish in-flight work on stop (10)")
    p.add_argument("--stop-budget", type=float, help="seconds the whole stop may take (default 30)")
    p.add_argument(
        "--data-dir",
        help="folder for the bot's durable files, one subfolder per bot id; default "
        "$TGRUNNER_DATA_DIR, else ./.tgrunner",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--journal",
        metavar="PATH",
        help="the intake journal file, instead of <data dir>/<bot id>/journal.sqlite3 (its "
        "folder must exist)",
    )
    group.add_argument(
        "--no-journal",
        action="store_true",
        help="strict offsets: no journal; Telegram keeps what is unfinished (at most 100 "
        "updates in flight)",
    )
    p.add_argument(
        "--journal-sync",
        choices=("normal", "full"),
        help="normal (default): survives a crash of the process; full: also a power loss "
        "(an fsync per write)",
    )
    p.add_argument(
        "--proxy",
        metavar="URL",
        help="send every Bot API call through this http(s) proxy (on the aiohttp transport); "
        "default $TGRUNNER_PROXY, else $HTTPS_PROXY / $ALL_PROXY minus $NO_PROXY",
    )
    p.add_argument(
        "--transport",
        choices=("fast", "aiohttp"),
        help="HTTP transport of the Bot API client (default fast; aiohttp whenever a proxy is set)",
    )
    p.add_argument(
        "--own-http",
        action="store_true",
        help="aiogram and PTB bots: keep the framework's own HTTP client instead of "
        "tgrunner's faster one",
    )
    _add_target_options(p)
    p.set_defaults(func=_cmd_run)


def _add_target_options(p: argparse.ArgumentParser) -> None:
    from tgrunner.runtime.targets import HELP

    group = p.add_argument_group("what TARGET may be", HELP)
    group.add_argument(
        "--factory",
        action="store_true",
        help="call TARGET (sync or async, no arguments) and run the bot it returns, as "
        "uvicorn's --factory",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with this command line's options on top."""
    settings = Settings.from_env()
    sched = settings.scheduler
    if args.concurrency is not None:
        sched = replace(sched, concurrency=args.concurrency)
    if args.handler_timeout is not None:
        sched = replace(sched, handler_timeout=args.handler_timeout)
    intake = settings.intake
    if args.data_dir is not None:
        intake = replace(intake, data_dir=args.data_dir)
    if args.journal is not None:
        intake = replace(intake, journal=True, journal_path=args.journal)
    if args.no_journal:
        intake = replace(intake, journal=False, journal_path=None)
    if args.journal_sync is not None:
        intake = replace(intake, journal_sync=args.journal_sync)
    client = settings.client
    if args.proxy is not None:
        client = replace(client, proxy=args.proxy)
    if args.transport is not None:
        client = replace(client, transport=args.transport)
    top = {}
    if args.grace is not None:
        top["grace"] = args.grace
    if args.stop_budget is not None:
        top["stop_budget"] = args.stop_budget
    return replace(settings, scheduler=sched, intake=intake, client=client, **top)


def _cmd_run(args: argparse.Namespace) -> int:
    from tgrunner.errors import UserCodeError
    from tgrunner.runtime.build import build_launcher

    token = args.token or os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    if token and not os.environ.get("BOT_TOKEN"):
        # Before the user's module is imported: a module-level Bot(token=os.getenv("BOT_TOKEN"))
        # then gets the token given on the command line.
        os.environ["BOT_TOKEN"] = token
    own = {"session": "aiogram", "request": "ptb"} if args.own_http else {}
    try:
        runner = build_launcher(
            args.target,
            token=token,
            api_url=args.api_url,
            settings=settings_from(args),
            factory=args.factory,
            **own,
        )
        return _run(runner)
    except UserCodeError as exc:
        sys.stderr.write(exc.traceback)
        raise


def _run(runner: Runner | EntryPoint) -> int:
    # The process is ours: everything imported and built so far lives as long as it, so move
    # it out of the collector's sight, and collect the youngest generation less often, so a
    # backlog of thousands of queued updates is not traversed again and again.
    gc.freeze()
    gc.set_threshold(_GC_GEN0, *gc.get_threshold()[1:])
    return runner.run()
