"""The flood control's options of ``tgrunner run``: good values reach ``Settings.flood`` (a
flag winning over its variable, repeated ``--flood-rate`` adding up), and a bad one (a negative
rate, a zero burst, an unknown name) is one line and exit code 2."""

from __future__ import annotations

import argparse

import pytest

from cli_support import in_process
from tgrunner.cli.options import add_setting_options, settings_from
from tgrunner.flood.buckets import Rate
from tgrunner.flood.options import FloodOptions
from tgrunner.settings import Settings

TARGET = "no_such_bot_module:router"

BAD_FLAGS = [
    (["--flood", "slow"], "argument --flood: 'slow' must be one of: reactive, telegram, off"),
    (["--flood-rate", "private=-1/s"],
     "argument --flood-rate: 'private=-1/s' sets private to '-1/s', which is a negative rate"),
    (["--flood-rate", "group=0/min"], "sets group to '0/min', which is a rate of 0"),
    (["--flood-rate", "private=1/s:0"],
     "sets private to '1/s:0', which has a burst of 0: a burst is a whole number of calls, 1 or"),
    (["--flood-rate", "private=1/s:1.5"], "which has a burst of 1.5"),
    (["--flood-rate", "privat=1/s"],
     "argument --flood-rate: 'privat=1/s' names the flood rate 'privat', which does not exist; "
     "the rates: private, group, bulk, paid"),
    (["--flood-rate", "private"], "argument --flood-rate: 'private' is not NAME=RATE"),
    (["--flood-rate", "bulk=fast"], "which is not a rate N/s[:BURST] or N/min[:BURST]"),
    (["--flood-rate", "bulk=30/h"], "which is not a rate N/s[:BURST] or N/min[:BURST]"),
    (["--flood-max-wait", "0"], "argument --flood-max-wait: '0' must be a number of seconds"),
    (["--flood-max-wait", "-3"], "argument --flood-max-wait: '-3' must be a number of seconds"),
    (["--flood-store", "http://cache:6379"],
     "argument --flood-store: 'http://cache:6379' is not a flood store URL: give "
     "redis://HOST:PORT/DB"),
    (["--flood", "off", "--flood-store", "redis://127.0.0.1:6379/0"],
     "a flood store (--flood-store) is set with flood mode off (--flood off)"),
]  # fmt: skip

BAD_VARIABLES = [
    ({"TGRUNNER_FLOOD": "loud"},
     "TGRUNNER_FLOOD='loud' (the variable of --flood) must be one of: reactive, telegram, off"),
    ({"TGRUNNER_FLOOD_RATES": "private=1/s:3,group=-20/min"},
     "TGRUNNER_FLOOD_RATES='private=1/s:3,group=-20/min' (the variable of --flood-rate) sets "
     "group to '-20/min', which is a negative rate"),
    ({"TGRUNNER_FLOOD_RATES": "bulk=30/s:0"}, "which has a burst of 0"),
    ({"TGRUNNER_FLOOD_MAX_WAIT": "soon"},
     "TGRUNNER_FLOOD_MAX_WAIT='soon' (the variable of --flood-max-wait) must be a number"),
    ({"TGRUNNER_FLOOD_REPLIES_BULK": "perhaps"}, "TGRUNNER_FLOOD_REPLIES_BULK='perhaps'"),
    ({"TGRUNNER_FLOOD_STORE": "memcached://x"}, "is not a flood store URL"),
]  # fmt: skip


def _one_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err, err


@pytest.mark.parametrize(("args", "message"), BAD_FLAGS)
def test_a_bad_flood_option_is_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _one_line(*in_process(capsys, "run", TARGET, *args)[::2], message)


@pytest.mark.parametrize(("env", "message"), BAD_VARIABLES)
def test_a_bad_flood_variable_is_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _one_line(*in_process(capsys, "run", TARGET)[::2], message)


def _settings(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_setting_options(parser)
    return settings_from(parser.parse_args(argv), env or {})


def test_the_defaults() -> None:
    flood = _settings([]).flood
    assert flood == FloodOptions() == Settings().flood
    assert (flood.mode, flood.max_wait, flood.max_queue) == ("reactive", 60.0, 1000)
    assert (flood.private, flood.group) == (Rate(1, 3), Rate.per_minute(20, 3))
    assert (flood.bulk, flood.paid) == (Rate(30, 30), Rate(1000, 1000))
    assert not flood.replies_count_against_bulk and flood.store is None


def test_flags_and_variables_reach_the_settings() -> None:
    env = {
        "TGRUNNER_FLOOD": "off",
        "TGRUNNER_FLOOD_RATES": "private=2/s:5, paid=500/s:100",
        "TGRUNNER_FLOOD_MAX_WAIT": "5",
    }
    flood = _settings(
        ["--flood", "telegram", "--flood-rate", "private=3/s", "--flood-rate", "group=10/min:2",
         "--flood-replies-bulk", "--flood-store", "redis://127.0.0.1:6379/3"],
        env,
    ).flood  # fmt: skip
    assert flood.mode == "telegram"  # the flag wins over its variable
    assert flood.private == Rate(3, 1)  # the flag's rate wins; burst 1 when not given
    assert flood.group == Rate.per_minute(10, 2)
    assert flood.paid == Rate(500, 100)  # the variable's other rates stay
    assert flood.bulk == Rate(30, 30)
    assert flood.max_wait == 5
    assert flood.replies_count_against_bulk
    assert flood.store == "redis://127.0.0.1:6379/3"
    assert flood.describe() == (
        "telegram (private 3/s:1, group 10/min:2, bulk 30/s:30, shared in 127.0.0.1)"
    )
    assert Settings.from_env(env).flood.mode == "off"


def test_good_flood_options_pass_their_checks(capsys: pytest.CaptureFixture[str]) -> None:
    # The options pass, so the run gets as far as importing the target.
    code, _, err = in_process(
        capsys, "run", TARGET, "--flood", "telegram", "--flood-rate", "bulk=25/s:25",
        "--flood-max-wait", "30", "--flood-replies-bulk",
    )  # fmt: skip
    _one_line(code, err, "Cannot import module 'no_such_bot_module'")
