"""``tgrunner worker MODULE``: run the jobs a bot queues, on this machine or any other."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tgrunner.cli.common import checked, number
from tgrunner.cli.connect import api_url_from, failure, token_from
from tgrunner.client.bot import check_api_url
from tgrunner.errors import ConfigError, NetworkError, TgrunnerError, Unauthorized
from tgrunner.intake.options import DEFAULT_DATA_DIR
from tgrunner.jobs.options import check_jobs_url

__all__ = ["add_parser"]

log = logging.getLogger("tgrunner")

DESCRIPTION = """\
Run the jobs a bot queues with task.enqueue(...), and send their replies.

MODULE is imported first (the module of the bot, or of its tasks), so an import error shows
at once; the tasks are then imported by their paths ('module:qualname') as jobs come, from
the current folder. The queue is --jobs: by default the embedded one of the bot whose token
is given, in the data dir (the same one as 'tgrunner run' uses); redis://... for RQ over
Valkey/Redis, which any number of workers on any machines can share.

A started job holds a lease that this worker renews; if the worker dies, the job is back in
the queue within seconds. SIGTERM (or Ctrl-C) stops cleanly: no new job is taken, running
jobs get --grace seconds to finish, and the unfinished ones are given back to the queue at
once; a second signal stops at once.
"""

EPILOG = f"""\
exit status: 0 after a clean stop or a drained --burst; 2 for bad arguments, a wrong token
or queue, or an import error of MODULE; 3 when a job ran past its time limit in a thread that
cannot be stopped (start the worker again: a supervisor such as systemd or Kubernetes does).

environment:
  TGRUNNER_TOKEN, BOT_TOKEN   the bot token, when --token is not given; prefer them to
                              --token, which other users of the machine see in 'ps'
  TGRUNNER_API_URL            the Bot API server, when --api-url is not given
  TGRUNNER_JOBS               the job queue, when --jobs is not given
  TGRUNNER_DATA_DIR           the data dir, when --data-dir is not given (default
                              {DEFAULT_DATA_DIR})
  TGRUNNER_LOG_LEVEL          debug, info (default), warning or error

examples:
  BOT_TOKEN=123456:ABC... tgrunner worker mybot                    (the bot's embedded queue)
  tgrunner worker mybot --jobs redis://127.0.0.1:6379/0 --concurrency 8
  tgrunner worker mybot --burst        (run what is queued, then exit: tests, cron)
  tgrunner worker mybot --processes 4  (4 worker processes, each replaced if it dies)
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``worker`` command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="run the jobs a bot queues (task.enqueue), and send their replies",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "module",
        metavar="MODULE",
        help="the module to import first: the bot's or its tasks' (mybot, mybot.tasks; a "
        "'module:attr' is taken as its module)",
    )
    add_queue_options(p)
    bot = p.add_argument_group("the bot")
    bot.add_argument("--token", help="bot token (default: $TGRUNNER_TOKEN, else $BOT_TOKEN)")
    bot.add_argument(
        "--api-url",
        type=checked(check_api_url, quote=False),
        metavar="URL",
        help="Bot API server's root URL (default: $TGRUNNER_API_URL, else "
        "https://api.telegram.org)",
    )
    run = p.add_argument_group("running jobs")
    run.add_argument(
        "--concurrency",
        type=number(int, low=1),
        default=1,
        metavar="N",
        help="jobs run at once by each worker process (default 1); sync jobs each take a thread",
    )
    run.add_argument(
        "--processes",
        type=number(int, low=1),
        default=1,
        metavar="N",
        help="worker processes, each replaced when it dies (default 1: this process runs the jobs)",
    )
    run.add_argument(
        "--burst",
        action="store_true",
        help="run the jobs that are queued, then exit (default: wait for more until stopped)",
    )
    run.add_argument(
        "--grace",
        type=number(float, low=0),
        default=30.0,
        metavar="SECONDS",
        help="seconds running jobs get to finish at a stop before they are given back (default 30)",
    )
    p.set_defaults(func=_cmd_worker)
    return p


def add_queue_options(p: argparse.ArgumentParser, **unset: Any) -> None:
    """``--jobs`` and ``--data-dir`` (``unset``: extra keyword arguments for each, such as
    ``default=argparse.SUPPRESS``)."""
    group = p.add_argument_group("the queue")
    group.add_argument(
        "--jobs",
        type=checked(check_jobs_url),
        metavar="URL",
        help="the job queue: redis://HOST:PORT/DB for RQ over Valkey/Redis, or sqlite:///PATH "
        "(default: $TGRUNNER_JOBS, else the bot's embedded queue in the data dir)",
        **unset,
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        help=f"the bots' data dir, of the embedded queue (default: $TGRUNNER_DATA_DIR, else "
        f"{DEFAULT_DATA_DIR})",
        **unset,
    )


def jobs_url_from(args: argparse.Namespace) -> str | None:
    """``--jobs``, else ``$TGRUNNER_JOBS`` (checked), else None (the embedded queue)."""
    if getattr(args, "jobs", None):
        return str(args.jobs)
    raw = os.environ.get("TGRUNNER_JOBS", "").strip()
    if not raw:
        return None
    try:
        return check_jobs_url(raw)
    except ValueError as exc:
        raise ConfigError(f"TGRUNNER_JOBS={raw!r} (the variable of --jobs) {exc}") from None


def data_dir_from(args: argparse.Namespace) -> Path:
    """``--data-dir``, else ``$TGRUNNER_DATA_DIR``, else ``./.tgrunner``, made absolute."""
    raw = getattr(args, "data_dir", None) or os.environ.get("TGRUNNER_DATA_DIR")
    return Path(raw or DEFAULT_DATA_DIR).resolve()


def _import_first(module: str) -> None:
    from tgrunner.errors import UserCodeError
    from tgrunner.runtime.entry import import_guarded

    name = module.partition(":")[0].strip()
    if not name:
        raise ConfigError(f"{module!r} names no module: give one, such as mybot or mybot.tasks")
    try:
        import_guarded(f"{name}:__name__")
    except UserCodeError as exc:
        sys.stderr.write(exc.traceback)
        raise


@contextlib.contextmanager
def _bot_token(token: str) -> Iterator[None]:
    """``$BOT_TOKEN`` set to ``token`` while the command runs, unless it is set already: the
    user's module may build a Bot from it (``Bot(token=os.getenv("BOT_TOKEN"))``)."""
    if os.environ.get("BOT_TOKEN"):
        yield
        return
    os.environ["BOT_TOKEN"] = token
    try:
        yield
    finally:
        os.environ.pop("BOT_TOKEN", None)


def _cmd_worker(args: argparse.Namespace) -> int:
    jobs = jobs_url_from(args)
    token = token_from(args)
    api_url = api_url_from(args)
    data_dir = data_dir_from(args)
    with _bot_token(token):
        return _work(args, jobs, token, api_url, data_dir)


def _work(
    args: argparse.Namespace, jobs: str | None, token: str, api_url: str, data_dir: Path
) -> int:
    _import_first(args.module)
    if args.processes > 1:
        return _serve_processes(args, jobs, token, api_url, data_dir)
    from tgrunner.runtime.runner import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        code = runner.run(_serve(args, jobs, token, api_url, data_dir))
    from tgrunner.jobs.worker import EXIT_REPLACE

    if code == EXIT_REPLACE:
        # A job's thread still runs and cannot be stopped: do not wait for it at exit.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)
    return code


async def _serve(
    args: argparse.Namespace, jobs: str | None, token: str, api_url: str, data_dir: Path
) -> int:
    from tgrunner.client.bot import Bot
    from tgrunner.jobs.source import open_source
    from tgrunner.jobs.worker import JobWorker

    bot = Bot(token, api_url=api_url, proxy=os.environ.get("TGRUNNER_PROXY", "").strip() or None)
    try:
        await _check_token(bot)
        source = open_source(jobs, data_dir=data_dir, bot_id=bot.id)
        try:
            worker = JobWorker(
                source, bot, concurrency=args.concurrency, burst=args.burst, grace=args.grace
            )
            return await _with_signals(worker)
        finally:
            await source.close()
    finally:
        await bot.close()


async def _check_token(bot: Any) -> None:
    """A refused token stops the worker at once; an unreachable Bot API only warns (the
    replies are retried)."""
    try:
        await bot.get_me()
    except Unauthorized as exc:
        raise ConfigError(failure(exc)) from None
    except (NetworkError, TgrunnerError) as exc:
        log.warning("the Bot API does not answer yet (%s); replies will be retried", exc)


async def _with_signals(worker: Any) -> int:
    loop = asyncio.get_running_loop()
    seen = [0]

    def record(sig: int) -> None:  # only records it: the worker's own loop acts
        seen[0] += 1
        log.info("received %s, %s", signal.Signals(sig).name,
                 "stopping" if seen[0] == 1 else "stopping fast")  # fmt: skip
        worker.stop(fast=seen[0] > 1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, record, sig)
    try:
        code: int = await worker.serve()
        return code
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _serve_processes(
    args: argparse.Namespace, jobs: str | None, token: str, api_url: str, data_dir: Path
) -> int:
    from tgrunner.jobs.pool import ProcessPool
    from tgrunner.jobs.worker import EXIT_REPLACE
    from tgrunner.runtime.jobs import WORKER_MODULE, child_environment

    argv = [sys.executable, "-m", WORKER_MODULE, "--data-dir", str(data_dir)]
    argv += ["--jobs", jobs] if jobs else []
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    argv += ["--concurrency", str(args.concurrency), "--grace", f"{args.grace:g}",
             "--path", os.getcwd(), "--ignore-sigint", "--log-level", level]  # fmt: skip
    argv += ["--burst"] if args.burst else []
    pool = ProcessPool(
        argv,
        processes=args.processes,
        env=child_environment(token, api_url),
        grace=args.grace,
        replace_code=EXIT_REPLACE,
        restart_clean_exits=not args.burst,
    )
    return pool.run()
