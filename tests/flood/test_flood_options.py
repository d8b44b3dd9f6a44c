"""FloodOptions: rates read from their written form, bad values refused with a message, the
options carried to worker processes as JSON and back unchanged."""

from __future__ import annotations

import pytest

from tgrunner.client.bot import Bot
from tgrunner.errors import ConfigError
from tgrunner.flood.buckets import Rate
from tgrunner.flood.limiter import FloodControl, flood_control
from tgrunner.flood.options import FloodOptions, parse_rate, parse_rates


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("1/s", Rate(1, 1)),
        ("1/s:3", Rate(1, 3)),
        (" 2.5 / s : 4 ", Rate(2.5, 4)),
        ("20/min:3", Rate.per_minute(20, 3)),
        ("1000/sec:1000", Rate(1000, 1000)),
        ("1e3/s", Rate(1000, 1)),
    ],
)
def test_rates_are_read_as_written(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


def test_a_list_names_each_rate() -> None:
    assert parse_rates("private=2/s:5, group=10/min") == {
        "private": Rate(2, 5),
        "group": Rate.per_minute(10, 1),
    }
    for bad, why in [("", "names no rate"), (",", "names no rate"),
                     ("private=1/s,nope=2/s", "'nope', which does not exist"),
                     ("private:1/s", "^is not NAME=RATE")]:  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_rates(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fast"}, "flood mode must be one of reactive, telegram, off"),
        ({"private": 1}, "the flood rate private must be a tgrunner.flood.Rate"),
        ({"max_wait": 0}, "flood max_wait must be a number of seconds above 0"),
        ({"max_wait": float("inf")}, "flood max_wait must be a number of seconds above 0"),
        ({"max_queue": 0}, "flood max_queue must be a whole number, 1 or more"),
        ({"retries": -1}, "flood retries must be a whole number, 0 or more"),
        ({"backoff": 2.0, "max_backoff": 1.0}, "0 <= backoff <= max_backoff"),
        ({"margin": -0.1}, "flood margin must be seconds, 0 or more"),
        ({"store": "postgres://db"}, "flood store 'postgres://db' is not a flood store URL"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        FloodOptions(**options)  # type: ignore[arg-type]


def test_options_cross_to_a_worker_process_unchanged() -> None:
    options = FloodOptions(
        mode="telegram",
        private=Rate(2, 5),
        group=Rate.per_minute(10, 2),
        max_wait=5,
        replies_count_against_bulk=True,
        store="redis://127.0.0.1:6379/0",
    )
    assert FloodOptions.from_json(options.to_json()) == options
    assert FloodOptions.from_json({}) == FloodOptions()


def test_with_rates_replaces_only_the_named_ones() -> None:
    options = FloodOptions().with_rates({"bulk": Rate(10, 10)})
    assert options.bulk == Rate(10, 10) and options.private == FloodOptions().private
    with pytest.raises(ConfigError, match="unknown flood rate 'fast'"):
        FloodOptions().with_rates({"fast": Rate(1, 1)})


def test_off_means_no_flood_control() -> None:
    assert flood_control(FloodOptions(mode="off")) is None
    assert isinstance(flood_control(None), FloodControl)
    with pytest.raises(ConfigError, match="use None"):
        FloodControl(FloodOptions(mode="off"))
    assert FloodOptions(mode="off").describe() == "off"
    assert FloodOptions().describe() == "reactive (bulk 30/s:30)"


@pytest.mark.timeout(10)
def test_a_bot_given_a_flood_store_in_its_options_says_where_stores_are_opened() -> None:
    with pytest.raises(ConfigError, match="does not open a flood store itself"):
        Bot("123:abc", flood=FloodOptions(store="redis://127.0.0.1:6379/0"))
