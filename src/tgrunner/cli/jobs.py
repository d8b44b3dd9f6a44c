"""``tgrunner jobs [show|retry|cancel ID | list STATE]``: look at a bot's jobs, act on one."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.cli.common import bot_id_arg
from tgrunner.cli.worker import add_queue_options, data_dir_from, jobs_url_from
from tgrunner.errors import ConfigError
from tgrunner.jobs.store import STATES

__all__ = ["add_parser"]

DESCRIPTION = """\
Look at the jobs a bot queued with task.enqueue(...), and act on one.

Without an action: how many jobs are in each state (queued, scheduled for a retry, started,
finished, failed, canceled). 'show ID' prints one job: its state, function, attempts, times,
error and where its reply goes; 'list STATE' the newest jobs in a state; 'retry ID' queues a
failed or canceled job again; 'cancel ID' cancels a queued or scheduled one. All of it works
while the bot and its workers run.
"""

_FINDING = """\
The queue is found as 'tgrunner run' finds it: --jobs URL (RQ over Valkey/Redis, or a SQLite
file), else the embedded queue of the bot named by --bot-id or the token, in the data dir
(with neither, the only bot there).

exit status: 0 done; 1 no job by that id (it never was, or its result's time to live ended),
or a job not in a state for the action; 2 bad arguments, or no queue there.

environment:
  TGRUNNER_JOBS               the job queue, when --jobs is not given
  TGRUNNER_DATA_DIR           the data dir, when --data-dir is not given (default ./.tgrunner)
  TGRUNNER_TOKEN, BOT_TOKEN   the token, when neither --token nor --bot-id is given
  TGRUNNER_LOG_LEVEL          debug, info (default), warning or error
"""

_EXAMPLES = {
    "jobs": "  tgrunner jobs\n  tgrunner jobs --jobs redis://127.0.0.1:6379/0\n"
    "  tgrunner jobs show 6f1c...\n  tgrunner jobs list failed\n",
    "show": "  tgrunner jobs show 6f1c2a...\n  tgrunner jobs show 6f1c2a... --bot-id 123456\n",
    "list": "  tgrunner jobs list failed\n  tgrunner jobs list queued --limit 100\n",
    "retry": "  tgrunner jobs retry 6f1c2a...\n",
    "cancel": "  tgrunner jobs cancel 6f1c2a... --jobs redis://127.0.0.1:6379/0\n",
}

_ACTIONS = (
    ("show", "show one job", "Show one job: its state, function, attempts, when it was "
     "queued and ended, its last error and where its reply goes."),
    ("list", "list the newest jobs in a state", "List the newest jobs in one state, one line "
     "each: id, function, attempts, when it was queued, and the error of a failed one."),
    ("retry", "queue a failed or canceled job again", "Queue a failed or canceled job "
     "again: a worker runs it anew (its attempts start over) and replies as before."),
    ("cancel", "cancel a queued or scheduled job", "Cancel a job that has not started: it "
     "is never run, and nothing is sent."),
)  # fmt: skip


def _epilog(name: str) -> str:
    return f"{_FINDING}\nexamples:\n{_EXAMPLES[name]}"


def _job_id(text: str) -> str:
    job_id = text.strip()
    if not job_id or any(c.isspace() for c in job_id) or len(job_id) > 200:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (as enqueue returned it)")
    return job_id


def _state(text: str) -> str:
    if text not in STATES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job state: one of {', '.join(STATES)}")
    return text


def _add_finding(p: argparse.ArgumentParser, *, top: bool) -> None:
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    add_queue_options(p, **unset)
    p.add_argument(
        "--bot-id",
        type=bot_id_arg,
        metavar="ID",
        help="the bot whose embedded queue to open (default: the token's bot, else the only one)",
        **unset,
    )
    p.add_argument(
        "--token",
        help="the bot's token: its id names the embedded queue (default $TGRUNNER_TOKEN, else "
        "$BOT_TOKEN)",
        **unset,
    )


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``jobs`` command and its ``show``, ``list``, ``retry`` and ``cancel`` actions."""
    p: argparse.ArgumentParser = sub.add_parser(
        "jobs",
        help="jobs per state; show, list, retry or cancel jobs",
        description=DESCRIPTION,
        epilog=_epilog("jobs"),
    )
    _add_finding(p, top=True)
    actions = p.add_subparsers(dest="action", metavar="{show,list,retry,cancel}")
    for name, text, more in _ACTIONS:
        a = actions.add_parser(name, help=text, description=more, epilog=_epilog(name))
        if name == "list":
            a.add_argument(
                "state", type=_state, metavar="STATE", help=f"one of {', '.join(STATES)}"
            )
            a.add_argument(
                "--limit",
                type=_limit,
                default=20,
                metavar="N",
                help="at most this many, newest first (default 20)",
            )
        else:
            a.add_argument("job_id", type=_job_id, metavar="ID", help="the job's id")
        _add_finding(a, top=False)
    p.set_defaults(func=_cmd_jobs)
    return p


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number, at least 1")
    return int(text)


def _bot_of(args: argparse.Namespace) -> int:
    """The bot whose embedded queue is meant: --bot-id, the token's, or the only one."""
    token = getattr(args, "token", None) or os.environ.get("TGRUNNER_TOKEN")
    token = token or os.environ.get("BOT_TOKEN")
    root = data_dir_from(args)
    if getattr(args, "bot_id", None) is not None:
        bot_id = int(args.bot_id)
    elif token:
        head = token.partition(":")[0].strip()
        if not head.isdigit():
            raise ConfigError("The token is not in Telegram's format '<bot id>:<secret>'.")
        bot_id = int(head)
    else:
        found = sorted(p.parent.name for p in root.glob("*/jobs.sqlite"))
        if len(found) != 1:
            raise ConfigError(
                f"{root} holds the job queues of {len(found)} bots ({', '.join(found) or 'none'}"
                "); name one with --bot-id or --token, or pass --data-dir or --jobs."
            )
        bot_id = int(found[0])
    if not (root / str(bot_id) / "jobs.sqlite").is_file():
        raise ConfigError(
            f"Bot {bot_id} has no job queue in {root} (it has queued no job yet); check "
            "--data-dir, or pass --jobs."
        )
    return bot_id


def _cmd_jobs(args: argparse.Namespace) -> int:
    from tgrunner.jobs.queue import open_queue

    url = jobs_url_from(args)
    bot_id = _bot_of(args) if url is None else 0
    queue = open_queue(url, data_dir=data_dir_from(args), bot_id=bot_id)
    action: Callable[[Any, argparse.Namespace], Awaitable[int]] = {
        None: _counts,
        "show": _show,
        "list": _list,
        "retry": _retry,
        "cancel": _cancel,
    }[args.action]

    async def act() -> int:
        try:
            return await action(queue, args)
        finally:
            await queue.close()

    return asyncio.run(act())


async def _counts(queue: Any, args: argparse.Namespace) -> int:
    counts = await queue.counts()
    print(f"{queue.url}:")
    for state in STATES:
        print(f"  {state:<10} {counts.get(state, 0)}")
    return 0


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


async def _found(queue: Any, job_id: str) -> Any:
    info = await queue.info(job_id)
    if info is None:
        print(
            f"tgrunner: no job {job_id} in {queue.url}: it never was, or its result's time to "
            "live ended",
            file=sys.stderr,
        )
    return info


async def _show(queue: Any, args: argparse.Namespace) -> int:
    info = await _found(queue, args.job_id)
    if info is None:
        return 1
    target = _target(info.reply_to)
    rows = [
        ("id", info.id),
        ("state", info.state),
        ("function", info.function),
        ("attempts", str(info.attempts)),
        ("queued", _when(info.enqueued_at)),
        ("ended", _when(info.ended_at)),
        ("error", info.error or "-"),
        ("reply to", target),
    ]
    for name, value in rows:
        print(f"{name + ':':<10} {value}")
    return 0


def _target(reply: dict[str, Any] | None) -> str:
    """Where a job's reply goes, in words."""
    if not reply:
        return "none"
    parts = [f"chat {reply.get('chat_id')}"]
    for key, name in (("message_id", "message"), ("message_thread_id", "topic"),
                      ("business_connection_id", "business connection"),
                      ("status_message_id", "status message")):  # fmt: skip
        if reply.get(key):
            parts.append(f"{name} {reply[key]}")
    return ", ".join(parts)


async def _list(queue: Any, args: argparse.Namespace) -> int:
    jobs = await queue.listing(args.state, args.limit)
    print(f"{queue.url}: {len(jobs)} {args.state} job(s) shown (newest first)")
    for info in jobs:
        error = f"  {info.error}" if info.error else ""
        print(f"  {info.id}  {info.function}  {info.attempts} attempt(s)  queued "
              f"{_when(info.enqueued_at)}{error}")  # fmt: skip
    return 0


async def _retry(queue: Any, args: argparse.Namespace) -> int:
    return await _act(queue, args.job_id, queue.retry, "queued again", ("failed", "canceled"))


async def _cancel(queue: Any, args: argparse.Namespace) -> int:
    return await _act(queue, args.job_id, queue.cancel, "canceled", ("queued", "scheduled"))


async def _act(
    queue: Any,
    job_id: str,
    do: Callable[[str], Awaitable[bool]],
    done: str,
    allowed: tuple[str, ...],
) -> int:
    info = await _found(queue, job_id)
    if info is None:
        return 1
    if await do(job_id):
        print(f"job {job_id} {done}")
        return 0
    now = await queue.info(job_id)
    state = now.state if now is not None else info.state
    print(
        f"tgrunner: job {job_id} is {state}: only a {' or '.join(allowed)} job can be {done}",
        file=sys.stderr,
    )
    return 1
