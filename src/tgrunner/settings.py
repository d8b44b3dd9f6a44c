"""One settings object for the runtime, nesting the options of each layer.

``Settings.from_env()`` reads ``TGRUNNER_*`` variables and rejects unknown ones, so a typo in a
deployment fails loudly instead of silently running with defaults. :data:`ENV` says where each
variable goes and how its text is read; ``tgrunner run`` gives each of them a flag too, and
builds its settings with :meth:`Settings.from_values`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tgrunner.client.options import ClientOptions
from tgrunner.client.transports import TRANSPORTS
from tgrunner.errors import ConfigError
from tgrunner.executors.processes.options import WorkerOptions, resolve_workers, share_of
from tgrunner.flood.options import MODES, FloodOptions, check_store, parse_rates
from tgrunner.intake.options import IntakeOptions
from tgrunner.jobs.options import JobOptions, check_jobs_url
from tgrunner.keys import KeyFunc, default_keys
from tgrunner.scheduler import SchedulerOptions
from tgrunner.sources.polling import PollingOptions, check_update_kinds
from tgrunner.sources.webhook_options import WebhookOptions
from tgrunner.state.registry import check_url

__all__ = [
    "ENV",
    "ClientOptions",
    "EnvSetting",
    "Field",
    "FloodOptions",
    "IntakeOptions",
    "JobOptions",
    "KeyFunc",
    "PollingOptions",
    "SchedulerOptions",
    "Settings",
    "WebhookOptions",
    "WorkerOptions",
    "read_env",
]

# Variables read elsewhere (the CLI, the test suite), so not unknown.
_KNOWN_ELSEWHERE = {
    "TGRUNNER_TOKEN",
    "TGRUNNER_API_URL",
    "TGRUNNER_LOG_LEVEL",
    "TGRUNNER_REQUIRE_SERVICES",
    "TGRUNNER_SLOW",  # the test suite: run its slow process tests
    "TGRUNNER_OFFLOAD_PROCESSES",  # tgrunner.jobs.offload, when its pool starts
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

Field = tuple[str, str]
"""Where a value goes: (layer, field name); the layer is "scheduler", "polling", "intake",
"client", "workers", "webhook", "jobs", "flood", or "" for a field of :class:`Settings`
itself. The flood layer's ``rates`` is a dict of rates by name."""


def _whole(low: int, meaning: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = low - 1
        if value < low:
            raise ValueError(f"must be a whole number of at least {low} ({meaning})")
        return value

    return parse


def _seconds(meaning: str, *, zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            least = "0 or more" if zero else "more than 0"
            raise ValueError(f"must be a number of seconds, {least} ({meaning})")
        return value

    return parse


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("must be 1 or 0 (or true/false, yes/no, on/off)")


def _not(text: str) -> bool:
    return not _boolean(text)


def _text(text: str) -> str | None:
    return text.strip() or None


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.strip() not in options:
            raise ValueError(f"must be one of: {', '.join(options)}")
        return text.strip()

    return parse


def _workers(text: str) -> int:
    try:
        return resolve_workers(text)
    except ConfigError:
        raise ValueError("must be a whole number of at least 1, or auto (the CPUs)") from None


def _state_url(text: str) -> str:
    try:
        return check_url(text)
    except ConfigError as exc:
        message = str(exc)
        # "'URL' is not a state store URL: ..." -> "is not ...": the value is shown already.
        raise ValueError(
            message.partition("' ")[2] if message.startswith("'") else f"is refused: {message}"
        ) from None


def _kinds(text: str) -> tuple[str, ...]:
    return check_update_kinds(k.strip() for k in text.split(",") if k.strip())


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(",") if w.strip())


def _address(text: str) -> str:
    """A ``host:port`` to serve metrics on, read as
    :func:`tgrunner.observability.parse_listen` reads it (that module needs aiohttp)."""
    listen = text.strip()
    if listen.startswith("["):
        host, sep, port = listen[1:].partition("]:")
    else:
        host, sep, port = listen.rpartition(":")
        sep = "" if ":" in host else sep  # an IPv6 address needs brackets
    if not sep or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        raise ValueError(
            "is not host:port, e.g. 127.0.0.1:9090, [::1]:9090 or :9090 (port 0-65535)"
        )
    return listen


@dataclass(frozen=True, slots=True)
class EnvSetting:
    """Where a ``TGRUNNER_*`` variable goes (``to``: layer and field) and how its text is read
    (``parse``: raises ValueError saying what the value must be)."""

    to: Field
    parse: Callable[[str], Any]


ENV: Mapping[str, EnvSetting] = {
    "TGRUNNER_CONCURRENCY": EnvSetting(
        ("scheduler", "concurrency"), _whole(1, "how many handlers may run at once")
    ),
    "TGRUNNER_MAX_PENDING": EnvSetting(
        ("scheduler", "max_pending"), _whole(1, "how many updates may be queued or running")
    ),
    "TGRUNNER_MAX_PENDING_PER_KEY": EnvSetting(
        ("scheduler", "max_pending_per_key"),
        _whole(1, "how many updates of one chat may be queued or running"),
    ),
    "TGRUNNER_HANDLER_TIMEOUT": EnvSetting(
        ("scheduler", "handler_timeout"), _seconds("a handler's time limit", zero=False)
    ),
    "TGRUNNER_HOOK_TIMEOUT": EnvSetting(
        ("scheduler", "hook_timeout"), _seconds("an error or timeout hook's limit", zero=False)
    ),
    "TGRUNNER_POLL_TIMEOUT": EnvSetting(
        ("polling", "timeout"), _whole(0, "long-poll seconds per getUpdates")
    ),
    "TGRUNNER_START_TIMEOUT": EnvSetting(
        ("polling", "start_timeout"),
        _seconds("how long start-up retries an unreachable Bot API", zero=True),
    ),
    "TGRUNNER_ALLOWED_UPDATES": EnvSetting(("polling", "allowed_updates"), _kinds),
    "TGRUNNER_DROP_PENDING_UPDATES": EnvSetting(("polling", "drop_pending_updates"), _boolean),
    "TGRUNNER_GRACE": EnvSetting(
        ("", "grace"), _seconds("how long a stop waits for running handlers", zero=True)
    ),
    "TGRUNNER_STOP_BUDGET": EnvSetting(
        ("", "stop_budget"), _seconds("how long the whole stop may take", zero=False)
    ),
    "TGRUNNER_DATA_DIR": EnvSetting(("intake", "data_dir"), _text),
    "TGRUNNER_JOURNAL": EnvSetting(("intake", "journal_path"), _text),
    "TGRUNNER_NO_JOURNAL": EnvSetting(("intake", "journal"), _not),
    "TGRUNNER_JOURNAL_SYNC": EnvSetting(("intake", "journal_sync"), _choice("normal", "full")),
    "TGRUNNER_TRANSPORT": EnvSetting(("client", "transport"), _choice(*TRANSPORTS)),
    "TGRUNNER_PROXY": EnvSetting(("client", "proxy"), _text),
    "TGRUNNER_WORKERS": EnvSetting(("workers", "workers"), _workers),
    "TGRUNNER_HEARTBEAT_TIMEOUT": EnvSetting(
        ("workers", "heartbeat_timeout"),
        _seconds("how long a worker process may send no heartbeat", zero=False),
    ),
    "TGRUNNER_STARTUP_GRACE": EnvSetting(
        ("workers", "startup_grace"),
        _seconds("how long a worker process may take to start", zero=False),
    ),
    "TGRUNNER_WEBHOOK_URL": EnvSetting(("webhook", "url"), _text),
    "TGRUNNER_LISTEN": EnvSetting(("webhook", "listen"), _text),
    "TGRUNNER_WEBHOOK_SECRET": EnvSetting(("webhook", "secret"), _text),
    "TGRUNNER_MAX_CONNECTIONS": EnvSetting(
        ("webhook", "max_connections"), _whole(1, "connections Telegram may open at once")
    ),
    "TGRUNNER_TLS_CERT": EnvSetting(("webhook", "tls_cert"), _text),
    "TGRUNNER_TLS_KEY": EnvSetting(("webhook", "tls_key"), _text),
    "TGRUNNER_NO_SET_WEBHOOK": EnvSetting(("webhook", "set_webhook"), _not),
    "TGRUNNER_DELETE_WEBHOOK_ON_STOP": EnvSetting(("webhook", "delete_on_stop"), _boolean),
    "TGRUNNER_WEBHOOK_ALLOW_IPS": EnvSetting(("webhook", "allow_ips"), _words),
    "TGRUNNER_TRUSTED_PROXIES": EnvSetting(("webhook", "trusted_proxies"), _words),
    "TGRUNNER_WEBHOOK_MODE": EnvSetting(("webhook", "mode"), _choice("journal", "direct")),
    "TGRUNNER_METRICS": EnvSetting(("", "metrics"), _address),
    "TGRUNNER_JOBS": EnvSetting(("jobs", "url"), check_jobs_url),
    "TGRUNNER_JOB_WORKERS": EnvSetting(
        ("jobs", "workers"), _whole(0, "job worker processes beside the bot")
    ),
    "TGRUNNER_STATE": EnvSetting(("", "state"), _state_url),
    "TGRUNNER_FLOOD": EnvSetting(("flood", "mode"), _choice(*MODES)),
    "TGRUNNER_FLOOD_RATES": EnvSetting(("flood", "rates"), parse_rates),
    "TGRUNNER_FLOOD_MAX_WAIT": EnvSetting(
        ("flood", "max_wait"), _seconds("how long a call may wait to leave", zero=False)
    ),
    "TGRUNNER_FLOOD_REPLIES_BULK": EnvSetting(("flood", "replies_count_against_bulk"), _boolean),
    "TGRUNNER_FLOOD_STORE": EnvSetting(("flood", "store"), check_store),
}
"""Every ``TGRUNNER_*`` setting :meth:`Settings.from_env` reads, by variable name."""


def read_env(
    env: Mapping[str, str] | None = None, *, flags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``TGRUNNER_*`` settings of ``env`` (default ``os.environ``), parsed, by name.

    Unknown variables and bad values raise ConfigError naming the variable (and its flag, when
    ``flags`` maps the variable to one).
    """
    env = os.environ if env is None else env
    flags = flags or {}
    values: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith("TGRUNNER_") or name in _KNOWN_ELSEWHERE:
            continue
        setting = ENV.get(name)
        if setting is None:
            raise ConfigError(
                f"Unknown setting {name}. Known ones: {', '.join(sorted(ENV))}; unset it or fix "
                "its spelling."
            )
        try:
            values[name] = setting.parse(raw)
        except ValueError as exc:
            flag = f" (the variable of {flags[name]})" if name in flags else ""
            raise ConfigError(f"{name}={raw!r}{flag} {exc}") from None
    return values


def _renamed(message: str, names: Mapping[Field, str]) -> str:
    """A validation message with the fields it names shown as ``names`` says (flags, variables)."""
    for (_, name), shown in sorted(names.items(), key=lambda item: -len(item[0][1])):
        if "_" in name or name == "concurrency":  # distinctive: not a word of the sentence
            message = re.sub(rf"(?<![\w-]){name}(?![\w-])", shown, message)
    return message


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the runtime can be told.

    - ``scheduler``: concurrency (default 500), per-key and total queue limits, handler time
      limit (default none); see ``tgrunner.scheduler.SchedulerOptions``.
    - ``polling``: long-poll timeout (default 30 s), ``allowed_updates``, backoff; see
      ``tgrunner.sources.polling.PollingOptions``.
    - ``intake``: the journal (on by default, in ``./.tgrunner/<bot id>/``) or strict
      offsets; see ``tgrunner.intake.options.IntakeOptions``.
    - ``keys``: the function giving an update's ordering keys; default: its chat, else its
      user, else its poll, else none (``tgrunner.keys.default_keys``).
    - ``grace``: seconds a clean stop waits for in-flight handlers, default 10.
    - ``stop_budget``: seconds the whole stop may take (grace, cancelling, confirming, the
      shutdown hook), default 30.
    - ``client``: the Bot API client's transport (default ``fast``), proxy (default: the
      environment's) and timeout (default 60 s); see ``tgrunner.client.options.ClientOptions``.
    - ``workers``: worker processes (default ``workers=1``: none, every handler runs in this
      process), their heartbeat timeout (10 s) and start-up grace (60 s); see
      ``tgrunner.executors.processes.WorkerOptions``. More workers than the concurrency is a
      ConfigError.
    - ``webhook``: a webhook instead of polling (default None: polling); see
      ``tgrunner.sources.webhook_options.WebhookOptions``. It needs the journal.
    - ``metrics``: ``host:port`` to serve ``/metrics``, ``/healthz`` and ``/readyz`` on
      (needs prometheus_client), default None: no metrics; see :mod:`tgrunner.observability`.
    - ``jobs``: the job queue (default: the embedded one in the data dir) and the job worker
      processes beside the bot (default 0); see ``tgrunner.jobs.options.JobOptions``.
    - ``state``: the state store's URL (``sqlite:///PATH``, ``postgresql://…``,
      ``mysql://…``, ``redis://…``; see :func:`tgrunner.state.open_store`), opened as the bot
      starts; default None: SQLite in ``<data dir>/<bot id>/state.sqlite``, opened at its
      first use. See :mod:`tgrunner.runtime.state`.
    """

    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    polling: PollingOptions = field(default_factory=PollingOptions)
    intake: IntakeOptions = field(default_factory=IntakeOptions)
    keys: KeyFunc = default_keys
    grace: float = 10.0
    stop_budget: float = 30.0
    client: ClientOptions = field(default_factory=ClientOptions)
    workers: WorkerOptions = field(default_factory=lambda: WorkerOptions(workers=1))
    webhook: WebhookOptions | None = None
    metrics: str | None = None
    jobs: JobOptions = field(default_factory=JobOptions)
    state: str | None = None
    flood: FloodOptions = field(default_factory=FloodOptions)

    def __post_init__(self) -> None:
        if self.grace < 0:
            raise ConfigError(f"grace must be 0 or more seconds, got {self.grace}")
        if self.stop_budget <= 0:
            raise ConfigError(f"stop_budget must be more than 0 seconds, got {self.stop_budget}")
        if not callable(self.keys):
            raise ConfigError("keys must be a function of an update returning a list of keys")
        if not isinstance(self.jobs, JobOptions):
            raise ConfigError(f"jobs must be a JobOptions, got {self.jobs!r}")
        if self.state is not None:
            if not isinstance(self.state, str):
                raise ConfigError(f"state must be a store URL (a str), got {self.state!r}")
            check_url(self.state)
        if not isinstance(self.flood, FloodOptions):
            raise ConfigError(f"flood must be a FloodOptions, got {self.flood!r}")
        if not isinstance(self.workers, WorkerOptions):
            raise ConfigError(f"workers must be a WorkerOptions, got {self.workers!r}")
        share_of(self.scheduler.concurrency, self.workers.workers)  # too many workers: raises
        if self.state is not None and self.state.startswith("memory:") and self.workers.workers > 1:
            raise ConfigError(
                "state memory:// lives in one process, so worker processes would each have "
                "their own: give sqlite:///PATH (or a server) with more than one worker"
            )
        if self.webhook is not None and not self.intake.journal:
            raise ConfigError(
                "A webhook needs the journal: its 200 tells Telegram to forget the update, so "
                "the update must be on disk first. Drop --no-journal."
            )
        if self.webhook is not None and self.metrics is not None:
            port = self.metrics.rpartition(":")[2]
            if port != "0" and port == self.webhook.listen.rpartition(":")[2]:
                raise ConfigError(
                    f"--metrics ({self.metrics}) and the webhook's --listen address "
                    f"({self.webhook.listen}) share port {port}: give each its own"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``TGRUNNER_*`` variables; unknown ones raise ConfigError.

        Recognised (:data:`ENV`): ``TGRUNNER_CONCURRENCY``, ``TGRUNNER_MAX_PENDING``,
        ``TGRUNNER_MAX_PENDING_PER_KEY``, ``TGRUNNER_HANDLER_TIMEOUT`` (seconds),
        ``TGRUNNER_HOOK_TIMEOUT`` (seconds, default 10),
        ``TGRUNNER_POLL_TIMEOUT`` (seconds), ``TGRUNNER_START_TIMEOUT`` (seconds),
        ``TGRUNNER_ALLOWED_UPDATES`` (comma-separated update kinds),
        ``TGRUNNER_DROP_PENDING_UPDATES`` (1/0), ``TGRUNNER_GRACE`` (seconds),
        ``TGRUNNER_STOP_BUDGET`` (seconds), ``TGRUNNER_DATA_DIR`` (default ``./.tgrunner``),
        ``TGRUNNER_JOURNAL`` (an explicit journal file), ``TGRUNNER_NO_JOURNAL`` (1: strict
        offsets), ``TGRUNNER_JOURNAL_SYNC`` (``normal`` or ``full``),
        ``TGRUNNER_TRANSPORT`` (``fast`` or ``aiohttp``), ``TGRUNNER_PROXY`` (an http(s) proxy
        URL; empty: none set here, the standard proxy variables still apply),
        ``TGRUNNER_WORKERS`` (a count or ``auto``), ``TGRUNNER_HEARTBEAT_TIMEOUT`` and
        ``TGRUNNER_STARTUP_GRACE`` (seconds), ``TGRUNNER_METRICS`` (``host:port`` of the
        metrics server), ``TGRUNNER_JOBS`` (the job queue URL), ``TGRUNNER_JOB_WORKERS`` (job
        worker processes beside the bot), ``TGRUNNER_STATE`` (the state store URL), the
        webhook's ``TGRUNNER_WEBHOOK_*`` variables, ``TGRUNNER_FLOOD`` (``reactive``,
        ``telegram`` or ``off``), ``TGRUNNER_FLOOD_RATES`` (``private=1/s:3,group=20/min:3``,
        …), ``TGRUNNER_FLOOD_MAX_WAIT`` (seconds), ``TGRUNNER_FLOOD_REPLIES_BULK`` (1/0),
        ``TGRUNNER_FLOOD_STORE`` (``redis://…``).
        Booleans are 1/0, true/false, yes/no or on/off.
        """
        values = read_env(env)
        base = cls.from_values(
            {ENV[name].to: value for name, value in values.items()},
            names={ENV[name].to: name for name in ENV},
        )
        return replace(base, **overrides) if overrides else base

    @classmethod
    def from_values(
        cls, values: Mapping[Field, Any], *, names: Mapping[Field, str] | None = None
    ) -> Settings:
        """Build settings from parsed values by (layer, field) (see :data:`ENV`).

        A value that does not fit the others raises ConfigError naming the fields as ``names``
        says (a flag, a variable), else by their Python names.
        """
        names = names or {}
        layers: dict[str, dict[str, Any]] = {
            "scheduler": {},
            "polling": {},
            "intake": {},
            "client": {},
            "workers": {"workers": 1},
            "webhook": {},
            "jobs": {},
            "flood": {},
            "": {},
        }
        for (layer, name), value in values.items():
            layers[layer][name] = value
        intake = layers["intake"]
        if intake.get("journal_sync") is None:
            intake.pop("journal_sync", None)
        if intake.get("journal") is False and intake.get("journal_path") is not None:
            path = names.get(("intake", "journal_path"), "journal_path")
            off = names.get(("intake", "journal"), "journal=False")
            raise ConfigError(f"{path} and {off} are both set: a journal file and none; pick one")
        webhook = {k: v for k, v in layers["webhook"].items() if v is not None}
        unset = {f.name: f.default for f in fields(WebhookOptions)}
        if "url" not in webhook and any(v != unset[k] for k, v in webhook.items()):
            given = ", ".join(names.get(("webhook", k), k) for k in sorted(webhook))
            url = names.get(("webhook", "url"), "url")
            raise ConfigError(f"{given} set without {url}: give the webhook's public URL")
        flood = layers["flood"]
        rates = flood.pop("rates", None) or {}
        try:
            return cls(
                webhook=WebhookOptions(**webhook) if "url" in webhook else None,
                flood=FloodOptions(**flood).with_rates(rates),
                scheduler=SchedulerOptions(**layers["scheduler"]),
                polling=PollingOptions(**layers["polling"]),
                intake=IntakeOptions(**intake),
                client=ClientOptions(**layers["client"]),
                workers=WorkerOptions(**layers["workers"]),
                jobs=JobOptions(**layers["jobs"]),
                **layers[""],
            )
        except ConfigError as exc:
            raise ConfigError(_renamed(str(exc), names)) from None
