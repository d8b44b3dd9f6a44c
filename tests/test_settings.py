"""Settings from the environment: known variables parsed, unknown and bad ones refused loudly."""

from __future__ import annotations

import pytest

from tgrunner.errors import ConfigError
from tgrunner.intake.options import IntakeOptions
from tgrunner.scheduler import SchedulerOptions
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions


def test_from_env_reads_every_known_variable() -> None:
    s = Settings.from_env(
        {
            "TGRUNNER_CONCURRENCY": "7",
            "TGRUNNER_MAX_PENDING": "70",
            "TGRUNNER_MAX_PENDING_PER_KEY": "9",
            "TGRUNNER_HANDLER_TIMEOUT": "2.5",
            "TGRUNNER_POLL_TIMEOUT": "3",
            "TGRUNNER_ALLOWED_UPDATES": "message, callback_query",
            "TGRUNNER_DROP_PENDING_UPDATES": "1",
            "TGRUNNER_GRACE": "4",
            "TGRUNNER_STOP_BUDGET": "12",
            "TGRUNNER_START_TIMEOUT": "5",
            "TGRUNNER_DATA_DIR": "/srv/bots",
            "TGRUNNER_JOURNAL": "/tmp/x.db",
            "TGRUNNER_JOURNAL_SYNC": "full",
            "TGRUNNER_TOKEN": "ignored here",
            "HOME": "/root",
        }
    )
    assert (s.scheduler.concurrency, s.scheduler.max_pending) == (7, 70)
    assert s.scheduler.max_pending_per_key == 9 and s.scheduler.handler_timeout == 2.5
    assert s.polling.timeout == 3 and s.polling.drop_pending_updates
    assert s.polling.allowed_updates == ("message", "callback_query")
    assert s.grace == 4 and s.stop_budget == 12 and s.polling.start_timeout == 5
    assert s.intake == IntakeOptions(
        journal=True, data_dir="/srv/bots", journal_path="/tmp/x.db", journal_sync="full"
    )


def test_the_journal_is_the_default_and_can_be_turned_off() -> None:
    assert Settings().intake.journal
    assert Settings.from_env({}).intake == IntakeOptions()
    assert not Settings.from_env({"TGRUNNER_NO_JOURNAL": "1"}).intake.journal
    assert Settings.from_env({"TGRUNNER_NO_JOURNAL": "0"}).intake.journal
    with pytest.raises(ConfigError, match="pick one"):
        Settings.from_env({"TGRUNNER_NO_JOURNAL": "1", "TGRUNNER_JOURNAL": "/tmp/j"})
    with pytest.raises(ConfigError, match="'normal' or 'full'"):
        Settings.from_env({"TGRUNNER_JOURNAL_SYNC": "sometimes"})
    with pytest.raises(ConfigError, match="stop_budget"):
        Settings(stop_budget=0)


def test_unknown_variable_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Unknown setting TGRUNNER_CONCURENCY.*CONCURRENCY"):
        Settings.from_env({"TGRUNNER_CONCURENCY": "5"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TGRUNNER_CONCURRENCY": "many"}, "not a valid int"),
        ({"TGRUNNER_CONCURRENCY": "0"}, "concurrency"),
        ({"TGRUNNER_POLL_TIMEOUT": "-1"}, "timeout"),
        ({"TGRUNNER_GRACE": "-2"}, "grace"),
        ({"TGRUNNER_HANDLER_TIMEOUT": "0"}, "handler_timeout"),
    ],
)
def test_bad_values_say_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_option_checks() -> None:
    with pytest.raises(ConfigError, match="between 1 and 100"):
        PollingOptions(limit=101)
    with pytest.raises(ConfigError, match="list of update kinds"):
        PollingOptions(allowed_updates="message")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SchedulerOptions(concurrency=10, max_pending=5)
