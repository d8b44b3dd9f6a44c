"""Settings from the environment: known variables parsed, unknown and bad ones refused loudly."""

from __future__ import annotations

import pytest

from tgrunner.errors import ConfigError
from tgrunner.executors.processes import WorkerOptions, available_cpus
from tgrunner.intake.options import IntakeOptions
from tgrunner.scheduler import SchedulerOptions
from tgrunner.settings import Settings
from tgrunner.sources.polling import UPDATE_KINDS, PollingOptions
from tgrunner.testing.botapi import load_spec


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
    with pytest.raises(ConfigError, match="TGRUNNER_JOURNAL_SYNC='sometimes' must be one of"):
        Settings.from_env({"TGRUNNER_JOURNAL_SYNC": "sometimes"})
    with pytest.raises(ConfigError, match="stop_budget"):
        Settings(stop_budget=0)


def test_unknown_variable_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Unknown setting TGRUNNER_CONCURENCY.*CONCURRENCY"):
        Settings.from_env({"TGRUNNER_CONCURENCY": "5"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TGRUNNER_CONCURRENCY": "many"}, "TGRUNNER_CONCURRENCY='many' must be a whole number"),
        ({"TGRUNNER_CONCURRENCY": "0"}, "TGRUNNER_CONCURRENCY='0' must be .* at least 1"),
        ({"TGRUNNER_POLL_TIMEOUT": "-1"}, "TGRUNNER_POLL_TIMEOUT='-1' must be .* at least 0"),
        ({"TGRUNNER_GRACE": "-2"}, "TGRUNNER_GRACE='-2' must be a number of seconds, 0 or more"),
        ({"TGRUNNER_GRACE": "nan"}, "TGRUNNER_GRACE='nan' must be a number of seconds"),
        ({"TGRUNNER_HANDLER_TIMEOUT": "0"}, "TGRUNNER_HANDLER_TIMEOUT='0' .* more than 0"),
        ({"TGRUNNER_STOP_BUDGET": "soon"}, "TGRUNNER_STOP_BUDGET='soon' must be a number"),
        ({"TGRUNNER_DROP_PENDING_UPDATES": "maybe"}, "must be 1 or 0"),
        ({"TGRUNNER_NO_JOURNAL": "perhaps"}, "TGRUNNER_NO_JOURNAL='perhaps' must be 1 or 0"),
        ({"TGRUNNER_TRANSPORT": "curl"}, "must be one of: fast, aiohttp"),
    ],
)
def test_bad_values_say_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("yes", True), ("ON", True), ("true", True), ("0", False), ("off", False),
     ("No", False), ("", False)],
)  # fmt: skip
def test_booleans_take_the_usual_words(text: str, value: bool) -> None:
    env = {"TGRUNNER_DROP_PENDING_UPDATES": text, "TGRUNNER_NO_JOURNAL": text}
    s = Settings.from_env(env)
    assert s.polling.drop_pending_updates is value and s.intake.journal is not value


def test_allowed_updates_are_checked_against_the_bot_api() -> None:
    s = Settings.from_env({"TGRUNNER_ALLOWED_UPDATES": "message,managed_bot, poll"})
    assert s.polling.allowed_updates == ("message", "managed_bot", "poll")
    assert Settings.from_env({"TGRUNNER_ALLOWED_UPDATES": ""}).polling.allowed_updates == ()
    with pytest.raises(ConfigError, match=r"unknown update kind 'bogus'; the kinds: message, "):
        Settings.from_env({"TGRUNNER_ALLOWED_UPDATES": "message,bogus"})
    with pytest.raises(ConfigError, match=r"'calback_query'; did you mean 'callback_query'\?"):
        Settings.from_env({"TGRUNNER_ALLOWED_UPDATES": "calback_query"})


def test_the_update_kinds_are_the_fields_of_update_in_the_bot_api() -> None:
    assert list(UPDATE_KINDS) == load_spec().update_kinds()


def test_values_that_do_not_fit_together_are_named_by_their_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"TGRUNNER_MAX_PENDING": "5", "TGRUNNER_CONCURRENCY": "10"})
    assert str(caught.value) == (
        "TGRUNNER_MAX_PENDING (5) is below TGRUNNER_CONCURRENCY (10): it counts running "
        "handlers too. Raise TGRUNNER_MAX_PENDING or lower TGRUNNER_CONCURRENCY."
    )
    # In Python, by the options' own names.
    with pytest.raises(ConfigError, match=r"^max_pending \(5\) is below concurrency"):
        SchedulerOptions(concurrency=10, max_pending=5)


def test_option_checks() -> None:
    with pytest.raises(ConfigError, match="between 1 and 100"):
        PollingOptions(limit=101)
    with pytest.raises(ConfigError, match="list of update kinds"):
        PollingOptions(allowed_updates="message")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SchedulerOptions(concurrency=10, max_pending=5)


def test_worker_processes_are_off_by_default_and_read_from_the_environment() -> None:
    assert Settings().workers.workers == 1
    s = Settings.from_env(
        {
            "TGRUNNER_WORKERS": "3",
            "TGRUNNER_HEARTBEAT_TIMEOUT": "2.5",
            "TGRUNNER_STARTUP_GRACE": "20",
        }
    )
    assert (s.workers.workers, s.workers.heartbeat_timeout, s.workers.startup_grace) == (3, 2.5, 20)
    assert Settings.from_env({"TGRUNNER_WORKERS": "auto"}).workers.workers == available_cpus()


def test_more_workers_than_the_concurrency_is_refused() -> None:
    with pytest.raises(ConfigError, match="3 workers are more than the TGRUNNER_CONCURRENCY of 2"):
        Settings.from_env({"TGRUNNER_WORKERS": "3", "TGRUNNER_CONCURRENCY": "2"})
    with pytest.raises(ConfigError, match="5 workers are more than the concurrency of 4"):
        Settings(scheduler=SchedulerOptions(concurrency=4), workers=WorkerOptions(workers=5))
