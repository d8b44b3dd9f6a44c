"""The job worker process: ``python -m tgrunner.jobs.process`` (``main(argv)`` here), what a
pool of job workers starts.

::

    python -m tgrunner.jobs.process [--jobs URL] [--data-dir DIR] [--token TOKEN]
        [--api-url URL] [--concurrency N] [--burst] [--path DIR]... [--log-level LEVEL]
        [--lease S] [--grace S] [--wake auto|fifo|poll] [--ignore-sigint]

- ``--jobs``: the queue, as ``tgrunner run --jobs`` takes it (default: the embedded SQLite
  queue in ``--data-dir/<bot id>/``; ``--data-dir`` defaults to ``$TGRUNNER_DATA_DIR``, else
  ``./.tgrunner``). ``--wake`` is the SQLite source's (:mod:`tgrunner.jobs.backends.sqlite`).
- ``--token``: default ``$TGRUNNER_TOKEN``, else ``$BOT_TOKEN`` (prefer those: arguments are
  visible in ``ps``). ``--api-url``: default ``$TGRUNNER_API_URL``, else Telegram's.
- ``--path DIR`` (repeatable) goes first on ``sys.path``, so the tasks' modules import; the
  current folder is on it too.
- Logs go to stderr (``--log-level``, default INFO). Once it takes jobs it logs
  ``job worker OWNER ready: …``.
- SIGTERM, and SIGINT unless ``--ignore-sigint`` (for a pool that stops its workers itself
  when Ctrl+C reaches the whole process group), ask for a clean stop; a second one for a fast
  stop. The handlers only record the signal.
- Owners (lease holders) are ``host:pid:random``, unique per process.
- Exit codes: 0 a clean stop or a drained burst; 3
  (:data:`~tgrunner.jobs.worker.EXIT_REPLACE`) a job outlived its time limit in a thread
  that cannot be stopped: start a new worker in its place; 2
  (:data:`~tgrunner.jobs.worker.EXIT_CONFIG`) bad arguments, a queue that cannot be opened,
  or a token Telegram refuses: do not start it again as it is; 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tgrunner.client.bot import DEFAULT_API_URL, Bot
from tgrunner.errors import ConfigError, TgrunnerError, Unauthorized
from tgrunner.jobs.source import open_source
from tgrunner.jobs.worker import EXIT_CONFIG, EXIT_REPLACE, JobWorker

__all__ = ["main"]

log = logging.getLogger("tgrunner.jobs.worker")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tgrunner.jobs.process",
        description="A tgrunner job worker process (see the module doc).",
    )
    p.add_argument("--jobs", help="the queue URL (default: the embedded one in the data dir)")
    p.add_argument("--data-dir", default=os.environ.get("TGRUNNER_DATA_DIR", ".tgrunner"))
    p.add_argument("--token", help="bot token (default: $TGRUNNER_TOKEN, else $BOT_TOKEN)")
    p.add_argument("--api-url", help="Bot API server (default: $TGRUNNER_API_URL, else Telegram)")
    p.add_argument("--api-timeout", type=float, default=60.0, help="seconds per answer (60)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs at once (default 1)")
    p.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    p.add_argument("--path", action="append", default=[], help="a folder put on sys.path")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO (default), WARNING…")
    p.add_argument("--lease", type=float, default=5.0, help="lease seconds (default 5)")
    p.add_argument("--renew-every", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--grace", type=float, default=30.0, help="stop grace seconds (default 30)")
    p.add_argument("--wake", choices=("auto", "fifo", "poll"), help="SQLite: how to wait")
    p.add_argument("--ignore-sigint", action="store_true", help="leave Ctrl+C to a supervisor")
    return p


def _token(given: str | None) -> str:
    token = given or os.environ.get("TGRUNNER_TOKEN") or os.environ.get("BOT_TOKEN")
    if not token:
        raise ConfigError("no bot token: pass --token, or set TGRUNNER_TOKEN or BOT_TOKEN")
    return token.strip()


async def _serve(args: argparse.Namespace) -> int:
    api_url = args.api_url or os.environ.get("TGRUNNER_API_URL") or DEFAULT_API_URL
    bot = Bot(_token(args.token), api_url=api_url, timeout=args.api_timeout)
    try:
        options = {"wake": args.wake} if args.wake else None
        source = open_source(args.jobs, data_dir=args.data_dir, bot_id=bot.id, options=options)
        try:
            worker = JobWorker(source, bot, concurrency=args.concurrency, lease=args.lease,
                               renew_every=args.renew_every, burst=args.burst,
                               grace=args.grace)  # fmt: skip
            return await _with_signals(worker, ignore_sigint=args.ignore_sigint)
        finally:
            await source.close()
    finally:
        await bot.close()


async def _with_signals(worker: JobWorker, *, ignore_sigint: bool) -> int:
    loop = asyncio.get_running_loop()
    seen = [0]

    def record(sig: int) -> None:  # only records: the worker's loop acts on it
        seen[0] += 1
        worker.stop(fast=seen[0] > 1)

    signals = [signal.SIGTERM] + ([] if ignore_sigint else [signal.SIGINT])
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in signals:
        loop.add_signal_handler(sig, record, sig)
    try:
        return await worker.serve()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: Sequence[str] | None = None) -> int:
    """Run a job worker process (see the module doc); return its exit code."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    level: Any = args.log_level.upper()
    logging.basicConfig(
        level=level if isinstance(logging.getLevelName(level), int) else logging.INFO,
        format="%(asctime)s %(levelname)s [job worker %(process)d] %(name)s: %(message)s",
    )
    for folder in reversed(args.path):
        sys.path.insert(0, str(Path(folder).resolve()))
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code = runner.run(_serve(args))
    except (ConfigError, Unauthorized) as exc:
        log.error("job worker: %s", exc)
        return EXIT_CONFIG
    except TgrunnerError as exc:
        log.error("job worker stopped: %s", exc)
        return 1
    if code == EXIT_REPLACE:
        # A job's thread still runs; do not wait for it (or for anything it holds).
        logging.shutdown()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
