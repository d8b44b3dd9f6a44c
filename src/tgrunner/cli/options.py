"""The settings options of ``tgrunner run``: one flag per ``TGRUNNER_*`` variable.

Each flag is checked as it is parsed, with the same reading as its variable
(:data:`tgrunner.settings.ENV`); a flag wins over its variable. A value that does not fit the
others is reported by flag, or by variable when it came from the environment.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from tgrunner.cli.common import checked
from tgrunner.settings import ENV, Field, Settings, read_env

__all__ = ["FLAGS", "Flag", "add_setting_options", "settings_from"]


@dataclass(frozen=True, slots=True)
class Flag:
    """A ``tgrunner run`` option for the variable ``env``; ``help`` states its default.
    ``switch``: an option without a value (its variable is a boolean). ``repeat``: an option
    that may be given many times, each a dict that adds to the others (and to its
    variable's)."""

    flag: str
    env: str
    group: str
    help: str
    metavar: str | None = None
    switch: bool = False
    repeat: bool = False

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


FLAGS: tuple[Flag, ...] = (
    Flag("--concurrency", "TGRUNNER_CONCURRENCY", "handling",
         "handlers running at once (default 500)", "N"),
    Flag("--handler-timeout", "TGRUNNER_HANDLER_TIMEOUT", "handling",
         "seconds a handler may run before it is cancelled (default: no limit)", "SECONDS"),
    Flag("--hook-timeout", "TGRUNNER_HOOK_TIMEOUT", "handling",
         "seconds an error or timeout hook may run (default 10)", "SECONDS"),
    Flag("--max-pending", "TGRUNNER_MAX_PENDING", "handling",
         "updates queued or running in all, the memory bound; at least --concurrency "
         "(default 10000); past it, fetching waits", "N"),
    Flag("--max-pending-per-key", "TGRUNNER_MAX_PENDING_PER_KEY", "handling",
         "updates of one chat queued or running (default 1000); past it, that chat's updates "
         "wait in the journal (with --no-journal they are dropped, with a warning)", "N"),
    Flag("--poll-timeout", "TGRUNNER_POLL_TIMEOUT", "polling",
         "long-poll seconds per getUpdates (default 30)", "SECONDS"),
    Flag("--allowed-updates", "TGRUNNER_ALLOWED_UPDATES", "polling",
         "comma-separated update kinds to receive, such as message,callback_query (default: "
         "the kinds an aiogram or PTB bot handles, else Telegram's setting for the bot)",
         "KINDS"),
    Flag("--drop-pending-updates", "TGRUNNER_DROP_PENDING_UPDATES", "polling",
         "skip the updates waiting at Telegram when the bot starts (default: handle them)",
         switch=True),
    Flag("--start-timeout", "TGRUNNER_START_TIMEOUT", "polling",
         "seconds to keep retrying an unreachable Bot API at start (default 60)", "SECONDS"),
    Flag("--data-dir", "TGRUNNER_DATA_DIR", "intake",
         "folder of the bots' durable files, one subfolder per bot id (default ./.tgrunner)",
         "DIR"),
    Flag("--journal", "TGRUNNER_JOURNAL", "intake",
         "the intake journal file, whose folder must exist (default: "
         "<data dir>/<bot id>/journal.sqlite3)", "PATH"),
    Flag("--no-journal", "TGRUNNER_NO_JOURNAL", "intake",
         "strict offsets: no journal; Telegram keeps what is unfinished, so at most 100 "
         "updates are in flight (default: the journal)", switch=True),
    Flag("--journal-sync", "TGRUNNER_JOURNAL_SYNC", "intake",
         "normal (default): the journal survives a crash of the process; full: also a power "
         "loss (an fsync per write)", "{normal,full}"),
    Flag("--grace", "TGRUNNER_GRACE", "stopping",
         "seconds a stop waits for running handlers (default 10)", "SECONDS"),
    Flag("--stop-budget", "TGRUNNER_STOP_BUDGET", "stopping",
         "seconds the whole stop may take (default 30)", "SECONDS"),
    Flag("--transport", "TGRUNNER_TRANSPORT", "HTTP client",
         "HTTP transport of the Bot API client: fast (default) or aiohttp (used whenever a "
         "proxy is set)", "{fast,aiohttp}"),
    Flag("--proxy", "TGRUNNER_PROXY", "HTTP client",
         "send every Bot API call through this http(s) proxy (default: $HTTPS_PROXY or "
         "$ALL_PROXY, minus $NO_PROXY; none when unset)", "URL"),
    Flag("--workers", "TGRUNNER_WORKERS", "workers",
         "worker processes running the handlers, or auto (the CPUs this process may use); "
         "each chat stays in one of them (default 1: no worker processes, everything in this "
         "one)", "N|auto"),
    Flag("--heartbeat-timeout", "TGRUNNER_HEARTBEAT_TIMEOUT", "workers",
         "seconds a worker process may send no heartbeat (its event loop is blocked) before "
         "it is replaced and its updates are redone (default 10)", "SECONDS"),
    Flag("--startup-grace", "TGRUNNER_STARTUP_GRACE", "workers",
         "seconds a worker process may take to load the bot and start (default 60)",
         "SECONDS"),
    Flag("--webhook-url", "TGRUNNER_WEBHOOK_URL", "webhook",
         "receive updates by webhook at this public https URL instead of polling; its path "
         "is the path served (default: polling)", "URL"),
    Flag("--listen", "TGRUNNER_LISTEN", "webhook",
         "address the webhook server binds, behind a reverse proxy usually 127.0.0.1:PORT "
         "(default 0.0.0.0:8443)", "HOST:PORT"),
    Flag("--webhook-secret", "TGRUNNER_WEBHOOK_SECRET", "webhook",
         "the secret Telegram sends in each request, 1-256 of A-Z a-z 0-9 _ - (default: one "
         "generated once and kept in <data dir>/<bot id>/webhook-secret)", "SECRET"),
    Flag("--max-connections", "TGRUNNER_MAX_CONNECTIONS", "webhook",
         "requests Telegram may send at once, 1-100 (default 40)", "N"),
    Flag("--tls-cert", "TGRUNNER_TLS_CERT", "webhook",
         "certificate file (PEM) when the bot serves HTTPS itself (default: plain HTTP, for "
         "a TLS-terminating proxy)", "PATH"),
    Flag("--tls-key", "TGRUNNER_TLS_KEY", "webhook",
         "private key file (PEM) of --tls-cert (default: none)", "PATH"),
    Flag("--no-set-webhook", "TGRUNNER_NO_SET_WEBHOOK", "webhook",
         "do not call setWebhook at start, when a proxy or another tool registers it "
         "(default: set it, with the URL, secret, allowed updates and max connections)",
         switch=True),
    Flag("--delete-webhook-on-stop", "TGRUNNER_DELETE_WEBHOOK_ON_STOP", "webhook",
         "call deleteWebhook when the bot stops (default: keep it, so Telegram queues "
         "updates while the bot is down)", switch=True),
    Flag("--webhook-allow-ips", "TGRUNNER_WEBHOOK_ALLOW_IPS", "webhook",
         "comma-separated networks allowed to post, 'telegram' meaning Telegram's own "
         "(default: any address)", "CIDRS"),
    Flag("--webhook-mode", "TGRUNNER_WEBHOOK_MODE", "webhook",
         "journal (default): answer Telegram once the update is on disk; direct: once it "
         "has been handled (that chat's next update waits for the handler)",
         "{journal,direct}"),
    Flag("--trusted-proxies", "TGRUNNER_TRUSTED_PROXIES", "webhook",
         "comma-separated networks of reverse proxies whose X-Forwarded-For is believed "
         "(default: none)", "CIDRS"),
    Flag("--jobs", "TGRUNNER_JOBS", "jobs",
         "the job queue: redis://HOST:PORT/DB for RQ over Valkey/Redis, or sqlite:///PATH "
         "(default: the embedded queue, <data dir>/<bot id>/jobs.sqlite)", "URL"),
    Flag("--job-workers", "TGRUNNER_JOB_WORKERS", "jobs",
         "job worker processes to run beside the bot, started once its checks passed and "
         "stopped after it (default 0: none; run 'tgrunner worker' instead)", "N"),
    Flag("--state", "TGRUNNER_STATE", "state",
         "the state store of ctx.chat_data, ctx.user_data, ctx.store and the aiogram and PTB "
         "bridges: sqlite:///PATH, postgresql://HOST/DB, mysql://HOST/DB or "
         "redis://HOST:PORT/DB, checked at start (default: SQLite in "
         "<data dir>/<bot id>/state.sqlite, opened at its first use)", "URL"),
    Flag("--flood", "TGRUNNER_FLOOD", "flood",
         "reactive (default): a 429 pauses only its chat, whose calls wait in order and are "
         "resent after retry_after, and broadcasts are paced; telegram: also token buckets at "
         "Telegram's limits (no 429s); off: no flood handling, a 429 reaches the handler",
         "{reactive,telegram,off}"),
    Flag("--flood-rate", "TGRUNNER_FLOOD_RATES", "flood",
         "a rate, NAME=N/s[:BURST] or NAME=N/min[:BURST] (burst default 1), repeatable; NAME "
         "private (default 1/s:3) or group (default 20/min:3), counted in telegram mode, bulk "
         "(broadcasts, default 30/s:30) or paid (paid broadcasts, default 1000/s:1000); its "
         "variable takes them comma-separated", "NAME=RATE", repeat=True),
    Flag("--flood-max-wait", "TGRUNNER_FLOOD_MAX_WAIT", "flood",
         "seconds a call may wait to leave (a paused chat, a bucket); one that would wait "
         "longer fails at once with FloodLimited, a RetryAfter (default 60)", "SECONDS"),
    Flag("--flood-replies-bulk", "TGRUNNER_FLOOD_REPLIES_BULK", "flood",
         "replies take slots of the bulk bucket too, so broadcasts slow down to leave room "
         "for them; replies never wait for it (default: only broadcasts count)", switch=True),
    Flag("--flood-store", "TGRUNNER_FLOOD_STORE", "flood",
         "share every bucket and 429 pause with other machines through Valkey/Redis, "
         "redis://HOST:PORT/DB, one round trip per send (default: none; worker processes "
         "share the global buckets in the data dir)", "URL"),
    Flag("--metrics", "TGRUNNER_METRICS", "observability",
         "serve Prometheus /metrics, /healthz and /readyz on this address, such as "
         "127.0.0.1:9090; port 0 picks a free one (default: no metrics server)", "HOST:PORT"),
)  # fmt: skip
"""Every settings option of ``tgrunner run``, in --help order."""

_GROUPS = {
    "handling": "handling (order, limits, time limits)",
    "polling": "polling (getUpdates)",
    "intake": "intake (the journal: no update lost)",
    "stopping": "stopping (SIGINT or SIGTERM: clean stop; a second one: fast)",
    "HTTP client": "HTTP client",
    "workers": "worker processes (all cores; SIGHUP replaces them one at a time)",
    "webhook": "webhook (each update on disk before its 200; needs the journal)",
    "jobs": "jobs (task.enqueue(...) from handlers; their replies sent by job workers)",
    "state": "state (data kept by handlers, atomic across worker processes and machines)",
    "flood": "flood control (outgoing calls: Telegram's limits, 429s, broadcasts)",
    "observability": "observability (metrics and health checks; pip install 'tgrunner[metrics]')",
}


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """Add every option of :data:`FLAGS` to ``parser``, in titled groups."""
    groups: dict[str, Any] = {}
    exclusive: Any = None
    for f in FLAGS:
        if f.group not in groups:
            groups[f.group] = parser.add_argument_group(_GROUPS[f.group])
        group = groups[f.group]
        if f.flag in ("--journal", "--no-journal"):
            exclusive = exclusive or group.add_mutually_exclusive_group()
            group = exclusive
        text = f"{f.help}; env {f.env}"
        if f.switch:
            group.add_argument(f.flag, dest=f.dest, action="store_true", help=text)
        elif f.repeat:
            group.add_argument(
                f.flag,
                dest=f.dest,
                action="append",
                type=checked(ENV[f.env].parse),
                metavar=f.metavar,
                help=text,
            )
        else:
            group.add_argument(
                f.flag, dest=f.dest, type=checked(ENV[f.env].parse), metavar=f.metavar, help=text
            )


def settings_from(args: argparse.Namespace, env: Any = None) -> Settings:
    """The environment's settings (``env``, default ``os.environ``) with this command line's
    options on top; ConfigError naming the flag (or the variable) whose value is wrong."""
    flags = {f.env: f.flag for f in FLAGS}
    from_env = read_env(env, flags=flags)
    values: dict[Field, Any] = {ENV[name].to: value for name, value in from_env.items()}
    names: dict[Field, str] = {ENV[f.env].to: f.flag for f in FLAGS}
    names.update({ENV[name].to: name for name in from_env})
    given: dict[Field, Any] = {}
    for f in FLAGS:
        value = getattr(args, f.dest, None)
        if value is None or value is False:
            continue
        if f.flag == "--no-journal":
            given[("intake", "journal")] = False
            given[("intake", "journal_path")] = None
        elif f.flag == "--journal":
            given[("intake", "journal")] = True
            given[("intake", "journal_path")] = value
        elif f.switch:  # its variable's reading of "1": True, or False for a --no-* switch
            given[ENV[f.env].to] = ENV[f.env].parse("1")
        elif f.repeat:  # dicts, each adding to its variable's
            merged = dict(values.get(ENV[f.env].to) or {})
            for each in value:
                merged.update(each)
            given[ENV[f.env].to] = merged
        else:
            given[ENV[f.env].to] = value
    for to in given:
        names[to] = next(f.flag for f in FLAGS if ENV[f.env].to == to)
    values.update(given)
    return Settings.from_values(values, names=names)
