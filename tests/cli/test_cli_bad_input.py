"""Every bad argument or setting ends with one line on stderr and exit code 2, never a
traceback. The line names the CLI flag (``--concurrency``), or the variable when the value came
from the environment; never a Python keyword argument (``concurrency=``)."""

from __future__ import annotations

import asyncio
import re

import pytest

from cli_support import in_process, in_subprocess

# A target that cannot be imported: an option checked before the bot is imported fails with
# its own message, never with "Cannot import module".
TARGET = "no_such_bot_module:router"

# Python names of settings, which a message for the command line must not use.
KEYWORDS = re.compile(
    r"\b(concurrency=|grace=|max_pending|handler_timeout|hook_timeout|stop_budget|"
    r"allowed_updates|drop_pending_updates|start_timeout|journal_sync|api_url)\b"
)

RUN_ARGS = [
    (["--api-url", "localhost:8081"],
     "argument --api-url: 'localhost:8081' is not an http:// or https:// URL; give the Bot API "
     "server's root URL with its scheme, such as http://localhost:8081"),
    (["--api-url", "https://api.telegram.org/bot"],
     "give the server's root without /bot: https://api.telegram.org"),
    (["--api-url", "http://127.0.0.1:8081/bot123:AAx/"],
     "ends in /bot, as python-telegram-bot's base_url does"),
    (["--concurrency", "0"], "argument --concurrency: '0' must be a whole number of at least 1"),
    (["--concurrency", "-4"], "argument --concurrency: '-4' must be a whole number of at least 1"),
    (["--concurrency", "many"], "argument --concurrency: 'many' must be a whole number"),
    (["--grace", "-1"], "argument --grace: '-1' must be a number of seconds, 0 or more"),
    (["--stop-budget", "0"], "argument --stop-budget: '0' must be a number of seconds, more"),
    (["--handler-timeout", "inf"], "argument --handler-timeout: 'inf' must be a number of seconds"),
    (["--poll-timeout", "-5"], "argument --poll-timeout: '-5' must be a whole number of at least"),
    (["--max-pending-per-key", "0"], "argument --max-pending-per-key: '0' must be a whole number"),
    (["--max-pending", "100"],
     "--max-pending (100) is below --concurrency (500): it counts running handlers too. Raise "
     "--max-pending or lower --concurrency."),
    (["--allowed-updates", "message,bogus"],
     "argument --allowed-updates: 'message,bogus' has an unknown update kind 'bogus'; the kinds: "
     "message, edited_message, channel_post"),
    (["--allowed-updates", "mesage"], "unknown update kind 'mesage'; did you mean 'message'?"),
    (["--journal-sync", "sometimes"], "argument --journal-sync: 'sometimes' must be one of: nor"),
    (["--transport", "curl"], "argument --transport: 'curl' must be one of: fast, aiohttp"),
    (["--journal", "j.db", "--no-journal"], "argument --no-journal: not allowed with argument"),
    (["--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
    (["--webhook-url", "https://x.example/hook", "--no-journal"],
     "A webhook needs the journal: its 200 tells Telegram to forget the update, so the update "
     "must be on disk first. Drop --no-journal."),
    (["--listen", "127.0.0.1:8080"],
     "--listen set without --webhook-url: give the webhook's public URL"),
    (["--webhook-url", "ftp://x.example/hook"], "webhook url 'ftp://x.example/hook' is not an "),
    (["--webhook-url", "https://x.example/hook", "--max-connections", "500"],
     "--max-connections must be a whole number 1-100, got 500"),
    (["--webhook-url", "https://x.example/hook", "--webhook-secret", "bad!secret"],
     "webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -"),
    (["--webhook-url", "https://x.example/hook", "--listen", "nowhere"],
     "webhook listen 'nowhere' is not host:port"),
    (["--webhook-url", "https://x.example/hook", "--tls-cert", "/no/such.pem"],
     "--tls-cert and --tls-key go together"),
    (["--webhook-url", "http://x.example/hook", "--tls-cert", "/etc/hostname", "--tls-key",
      "/etc/hostname"],
     "webhook --tls-cert serves HTTPS, but the url 'http://x.example/hook' is not https://"),
    (["--webhook-url", "https://x.example/hook", "--listen", "127.0.0.1:8443", "--metrics",
      "127.0.0.1:8443"],
     "--metrics (127.0.0.1:8443) and the webhook's --listen address (127.0.0.1:8443) share "
     "port 8443: give each its own"),
    (["--webhook-url", "https://x.example/hook", "--webhook-allow-ips", "10.0.0.300/8"],
     "--webhook-allow-ips has '10.0.0.300/8', which is not an address or network"),
    (["--state", "bank.db"],
     "argument --state: 'bank.db' is not a state store URL: give sqlite:///PATH, "
     "postgresql://HOST/DB, mysql://HOST/DB, redis://HOST:PORT/DB or memory://"),
    (["--state", "sqlite:///bank.db?colour=red"],
     "argument --state: 'sqlite:///bank.db?colour=red' is refused: state URL: unknown option "
     "'colour'; the options are connect_timeout, lease, lock_timeout"),
    (["--state", "redis://127.0.0.1/0?lock_timeout=soon"],
     "state URL: lock_timeout='soon' is not a float"),
    (["--state", "memory://", "--workers", "2"],
     "state memory:// lives in one process, so worker processes would each have their own"),
    (["--metrics", "localhost"], "argument --metrics: 'localhost' is not host:port, e.g. 127.0"),
    (["--metrics", "::1:9090"], "argument --metrics: '::1:9090' is not host:port"),
    (["--metrics", "127.0.0.1:99999"], "argument --metrics: '127.0.0.1:99999' is not host:port"),
]  # fmt: skip

RUN_ENV = [
    ({"TGRUNNER_DROP_PENDING_UPDATES": "maybe"},
     "TGRUNNER_DROP_PENDING_UPDATES='maybe' (the variable of --drop-pending-updates) must be 1 "
     "or 0 (or true/false, yes/no, on/off)"),
    ({"TGRUNNER_ALLOWED_UPDATES": "message,bogus"},
     "TGRUNNER_ALLOWED_UPDATES='message,bogus' (the variable of --allowed-updates) has an unknown "
     "update kind 'bogus'; the kinds: message, "),
    ({"TGRUNNER_CONCURRENCY": "0"},
     "TGRUNNER_CONCURRENCY='0' (the variable of --concurrency) must be a whole number of at "
     "least 1"),
    ({"TGRUNNER_CONCURRENCY": "1e3"}, "TGRUNNER_CONCURRENCY='1e3' (the variable of --concurren"),
    ({"TGRUNNER_GRACE": "-1"}, "TGRUNNER_GRACE='-1' (the variable of --grace) must be a number"),
    ({"TGRUNNER_POLL_TIMEOUT": "soon"}, "TGRUNNER_POLL_TIMEOUT='soon' (the variable of --poll-t"),
    ({"TGRUNNER_NO_JOURNAL": "perhaps"}, "TGRUNNER_NO_JOURNAL='perhaps' (the variable of --no-jo"),
    ({"TGRUNNER_MAX_PENDING": "100"},
     "TGRUNNER_MAX_PENDING (100) is below --concurrency (500): it counts running handlers too"),
    ({"TGRUNNER_JOURNAL": "j.db", "TGRUNNER_NO_JOURNAL": "1"},
     "TGRUNNER_JOURNAL and TGRUNNER_NO_JOURNAL are both set"),
    ({"TGRUNNER_API_URL": "localhost:8081"},
     "TGRUNNER_API_URL (the variable of --api-url): 'localhost:8081' is not an http:// or "
     "https:// URL"),
    ({"TGRUNNER_LOG_LEVEL": "loud"},
     "TGRUNNER_LOG_LEVEL='loud' (the variable of --log-level) must be one of: debug, info, "
     "warning, error"),
    ({"TGRUNNER_CONCURENCY": "5"}, "Unknown setting TGRUNNER_CONCURENCY. Known ones: "),
    ({"TGRUNNER_STATE": "postgres"},
     "TGRUNNER_STATE='postgres' (the variable of --state) is not a state store URL"),
    ({"TGRUNNER_METRICS": "9090"},
     "TGRUNNER_METRICS='9090' (the variable of --metrics) is not host:port"),
]  # fmt: skip

OTHER_COMMANDS = [
    (["demo", "--updates", "0"], "argument --updates: '0' must be a whole number, at least 1"),
    (["demo", "--updates", "-3"], "argument --updates: '-3' must be a whole number, at least 1"),
    (["demo", "--chats", "0"], "argument --chats: '0' must be a whole number, at least 1"),
    (["demo", "--chats", "-1"], "argument --chats: '-1' must be a whole number, at least 1"),
    (["demo", "--latency", "-1"], "argument --latency: '-1' must be a number, at least 0"),
    (["demo", "--rate", "-2.5"], "argument --rate: '-2.5' must be a number, at least 0"),
    (["demo", "--rate", "nan"], "argument --rate: 'nan' must be a number, at least 0"),
    (["fake-telegram", "--port", "99999"], "argument --port: must be from 0 to 65535"),
    (["fake-telegram", "--port", "-1"], "argument --port: must be from 0 to 65535"),
    (["fake-telegram", "--port", "http"], "argument --port: must be a port number"),
    (["journal", "retry", "twelve"], "'twelve' is not an update id (a number)"),
    (["journal", "list", "--bot-id", "abc"], "argument --bot-id: 'abc' is not a bot id"),
    (["--log-level", "loud", "run", TARGET], "argument --log-level: invalid choice: 'loud'"),
    (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
    ([], "the following arguments are required: COMMAND"),
]  # fmt: skip


def _one_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err, err


@pytest.mark.parametrize(("args", "message"), RUN_ARGS)
def test_a_bad_run_option_is_one_line_naming_the_flag(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = in_process(capsys, "run", TARGET, *args)
    _one_line(code, err, message)
    assert not KEYWORDS.search(err), err


@pytest.mark.parametrize(("env", "message"), RUN_ENV)
def test_a_bad_variable_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = in_process(capsys, "run", TARGET)
    _one_line(code, err, message)
    assert not KEYWORDS.search(err), err


@pytest.mark.parametrize(("args", "message"), OTHER_COMMANDS)
def test_a_bad_argument_of_any_command_is_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = in_process(capsys, *args)
    _one_line(code, err, message)


def test_a_flag_wins_over_its_variable_and_good_values_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The options pass their checks, so the run gets as far as importing the target.
    monkeypatch.setenv("TGRUNNER_MAX_PENDING", "100")
    monkeypatch.setenv("TGRUNNER_ALLOWED_UPDATES", "message")
    code, _, err = in_process(capsys, "run", TARGET, "--concurrency", "50", "--grace", "0")
    _one_line(code, err, "Cannot import module 'no_such_bot_module'")


async def test_in_a_real_process_bad_input_prints_no_traceback() -> None:
    cases = [
        (("fake-telegram", "--port", "99999"), {}, "must be from 0 to 65535"),
        (("demo", "--updates", "0"), {}, "must be a whole number, at least 1"),
        (("run", TARGET, "--api-url", "localhost:8081"), {}, "is not an http:// or https:// URL"),
        (("run", TARGET, "--api-url", "https://api.telegram.org/bot"), {}, "without /bot"),
        (("run", TARGET), {"TGRUNNER_DROP_PENDING_UPDATES": "maybe"}, "must be 1 or 0"),
        (("run", TARGET), {"TGRUNNER_ALLOWED_UPDATES": "message,bogus"}, "'bogus'"),
        (("run", TARGET, "--concurrency", "0"), {}, "argument --concurrency"),
    ]
    results = await asyncio.gather(*(in_subprocess(*args, env=env) for args, env, _ in cases))
    for (args, _, message), (code, out, err) in zip(cases, results, strict=True):
        assert (code, out) == (2, ""), (args, err)
        _one_line(code, err, message)
