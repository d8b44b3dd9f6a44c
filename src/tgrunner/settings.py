"""One settings object for the runtime, nesting the options of each layer.

``Settings.from_env()`` reads ``TGRUNNER_*`` variables and rejects unknown ones, so a typo in a
deployment fails loudly instead of silently running with defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tgrunner.client.options import ClientOptions
from tgrunner.errors import ConfigError
from tgrunner.intake.options import IntakeOptions
from tgrunner.keys import KeyFunc, default_keys
from tgrunner.scheduler import SchedulerOptions
from tgrunner.sources.polling import PollingOptions

__all__ = [
    "ClientOptions",
    "IntakeOptions",
    "KeyFunc",
    "PollingOptions",
    "SchedulerOptions",
    "Settings",
]

# Variables read elsewhere (the CLI, the test suite), so not unknown.
_KNOWN_ELSEWHERE = {"TGRUNNER_TOKEN", "TGRUNNER_API_URL", "TGRUNNER_REQUIRE_SERVICES"}
_TRUE = {"1", "true", "yes", "on"}


def _number(env: Mapping[str, str], name: str, kind: type) -> Any:
    raw = env[name]
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the runtime can be told.

    - ``scheduler``: concurrency (default 500), per-key and total queue limits, handler time
      limit (default none) — see :class:`~tgrunner.scheduler.SchedulerOptions`.
    - ``polling``: long-poll timeout (default 30 s), ``allowed_updates``, backoff — see
      :class:`~tgrunner.sources.polling.PollingOptions`.
    - ``intake``: the journal (on by default, in ``./.tgrunner/<bot id>/``) or strict
      offsets — see :class:`~tgrunner.intake.options.IntakeOptions`.
    - ``keys``: the function giving an update's ordering keys; default: its chat, else its
      user, else its poll, else none (:func:`tgrunner.keys.default_keys`).
    - ``grace``: seconds a clean stop waits for in-flight handlers, default 10.
    - ``stop_budget``: seconds the whole stop may take (grace, cancelling, confirming, the
      shutdown hook), default 30.
    - ``client``: the Bot API client's transport (default ``fast``), proxy (default: the
      environment's) and timeout (default 60 s) — see
      :class:`~tgrunner.client.options.ClientOptions`.
    """

    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    polling: PollingOptions = field(default_factory=PollingOptions)
    intake: IntakeOptions = field(default_factory=IntakeOptions)
    keys: KeyFunc = default_keys
    grace: float = 10.0
    stop_budget: float = 30.0
    client: ClientOptions = field(default_factory=ClientOptions)

    def __post_init__(self) -> None:
        if self.grace < 0:
            raise ConfigError(f"grace must be 0 or more seconds, got {self.grace}")
        if self.stop_budget <= 0:
            raise ConfigError(f"stop_budget must be more than 0 seconds, got {self.stop_budget}")
        if not callable(self.keys):
            raise ConfigError("keys must be a function of an update returning a list of keys")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``TGRUNNER_*`` variables; unknown ones raise ConfigError.

        Recognised: ``TGRUNNER_CONCURRENCY``, ``TGRUNNER_MAX_PENDING``,
        ``TGRUNNER_MAX_PENDING_PER_KEY``, ``TGRUNNER_HANDLER_TIMEOUT`` (seconds),
        ``TGRUNNER_HOOK_TIMEOUT`` (seconds, default 10),
        ``TGRUNNER_POLL_TIMEOUT`` (seconds), ``TGRUNNER_START_TIMEOUT`` (seconds),
        ``TGRUNNER_ALLOWED_UPDATES`` (comma-separated),
        ``TGRUNNER_DROP_PENDING_UPDATES`` (1/0), ``TGRUNNER_GRACE`` (seconds),
        ``TGRUNNER_STOP_BUDGET`` (seconds), ``TGRUNNER_DATA_DIR`` (default ``./.tgrunner``),
        ``TGRUNNER_JOURNAL`` (an explicit journal file), ``TGRUNNER_NO_JOURNAL`` (1: strict
        offsets), ``TGRUNNER_JOURNAL_SYNC`` (``normal`` or ``full``).
        ``TGRUNNER_TRANSPORT`` (``fast`` or ``aiohttp``), ``TGRUNNER_PROXY`` (an http(s) proxy
        URL; empty: none set here, the standard proxy variables still apply).
        """
        env = os.environ if env is None else env
        sched: dict[str, Any] = {}
        poll: dict[str, Any] = {}
        intake: dict[str, Any] = {}
        top: dict[str, Any] = {}
        client: dict[str, Any] = {}
        table: dict[str, tuple[dict[str, Any], str, type]] = {
            "TGRUNNER_CONCURRENCY": (sched, "concurrency", int),
            "TGRUNNER_MAX_PENDING": (sched, "max_pending", int),
            "TGRUNNER_MAX_PENDING_PER_KEY": (sched, "max_pending_per_key", int),
            "TGRUNNER_HANDLER_TIMEOUT": (sched, "handler_timeout", float),
            "TGRUNNER_HOOK_TIMEOUT": (sched, "hook_timeout", float),
            "TGRUNNER_POLL_TIMEOUT": (poll, "timeout", int),
            "TGRUNNER_START_TIMEOUT": (poll, "start_timeout", float),
            "TGRUNNER_GRACE": (top, "grace", float),
            "TGRUNNER_STOP_BUDGET": (top, "stop_budget", float),
        }
        texts: dict[str, tuple[dict[str, Any], str]] = {
            "TGRUNNER_DATA_DIR": (intake, "data_dir"),
            "TGRUNNER_JOURNAL": (intake, "journal_path"),
            "TGRUNNER_JOURNAL_SYNC": (intake, "journal_sync"),
        }
        for name in env:
            if not name.startswith("TGRUNNER_") or name in _KNOWN_ELSEWHERE:
                continue
            if name in table:
                target, key, kind = table[name]
                target[key] = _number(env, name, kind)
            elif name == "TGRUNNER_ALLOWED_UPDATES":
                poll["allowed_updates"] = tuple(
                    k.strip() for k in env[name].split(",") if k.strip()
                )
            elif name in texts:
                target, key = texts[name]
                target[key] = env[name].strip() or None
            elif name == "TGRUNNER_NO_JOURNAL":
                intake["journal"] = env[name].strip().lower() not in _TRUE
            elif name == "TGRUNNER_DROP_PENDING_UPDATES":
                poll["drop_pending_updates"] = env[name].strip().lower() in _TRUE
            elif name == "TGRUNNER_TRANSPORT":
                client["transport"] = env[name].strip()
            elif name == "TGRUNNER_PROXY":
                client["proxy"] = env[name].strip() or None
            else:
                known = sorted(
                    [
                        *table,
                        *texts,
                        "TGRUNNER_ALLOWED_UPDATES",
                        "TGRUNNER_DROP_PENDING_UPDATES",
                        "TGRUNNER_NO_JOURNAL",
                        "TGRUNNER_PROXY",
                        "TGRUNNER_TRANSPORT",
                    ]
                )
                raise ConfigError(
                    f"Unknown setting {name}. Known ones: {', '.join(known)}; unset it or fix "
                    "its spelling."
                )
        if intake.get("journal_sync") is None:
            intake.pop("journal_sync", None)
        base = cls(
            scheduler=SchedulerOptions(**sched),
            polling=PollingOptions(**poll),
            intake=IntakeOptions(**intake),
            client=ClientOptions(**client),
            **top,
        )
        return replace(base, **overrides) if overrides else base
