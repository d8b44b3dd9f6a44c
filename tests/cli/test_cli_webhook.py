"""``tgrunner set-webhook``, ``delete-webhook`` and ``webhook-info`` against FakeTelegram over
real HTTP: what FakeTelegram receives, what is printed (never the secret), pending updates
kept or dropped, a delivery error shown, and bad usage as one line with exit code 2."""

from __future__ import annotations

import orjson
import pytest

from cli_support import in_process, in_subprocess, in_thread
from servers import free_port
from tgrunner.cli.webhook import ago, describe_info
from tgrunner.testing import FakeTelegram

SECRET = "s3cr3t_T0ken-xyz"


def _bot(tg: FakeTelegram) -> list[str]:
    return ["--token", tg.token, "--api-url", tg.api_url]


@pytest.fixture(autouse=True)
def _no_token_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_TOKEN", "TGRUNNER_TOKEN", "TGRUNNER_API_URL", "TGRUNNER_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.timeout(20)
async def test_set_webhook_then_webhook_info_shows_it(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://bot.example.org/telegram"
    code, out, err = await in_thread(
        capsys, "set-webhook", url, *_bot(tg),
        "--webhook-secret", SECRET, "--max-connections", "7",
        "--allowed-updates", "message,callback_query", "--ip-address", "203.0.113.5",
        "--drop-pending-updates",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert out.count("\n") == 1 and SECRET not in out
    assert out.startswith(f"Webhook set: {url}; with a secret token; max 7 connections;")
    assert "updates: message, callback_query" in out and "pending updates dropped" in out
    [call] = tg.calls("setWebhook")
    assert call.params == {
        "url": url,
        "secret_token": SECRET,
        "max_connections": 7,
        "allowed_updates": ["message", "callback_query"],
        "ip_address": "203.0.113.5",
        "drop_pending_updates": True,
    }

    code, out, err = await in_thread(capsys, "webhook-info", *_bot(tg))
    assert (code, err) == (0, "")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines == [
        f"url {url}",
        "pending updates 0",
        "last error none",
        "max connections 7",
        "ip address 203.0.113.5",
        "allowed updates message, callback_query",
    ]
    code, out, err = await in_thread(capsys, "webhook-info", *_bot(tg), "--json")
    assert (code, err) == (0, "")
    info = orjson.loads(out)
    assert (info["url"], info["max_connections"], info["ip_address"]) == (url, 7, "203.0.113.5")


@pytest.mark.timeout(20)
async def test_by_default_40_connections_are_sent_and_nothing_else(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await in_thread(capsys, "set-webhook", "http://127.0.0.1:9/h", *_bot(tg))
    assert (code, err) == (0, ""), err
    assert out == "Webhook set: http://127.0.0.1:9/h; max 40 connections\n"
    [call] = tg.calls("setWebhook")
    assert call.params == {"url": "http://127.0.0.1:9/h", "max_connections": 40}


@pytest.mark.timeout(20)
async def test_delete_webhook_keeps_pending_updates_unless_told_to_drop_them(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = tg.user("Alice")
    alice.send("one")
    alice.send("two")
    assert tg.pending_updates == 2
    code, out, err = await in_thread(capsys, "delete-webhook", *_bot(tg))
    assert (code, err) == (0, "")
    assert out == "Webhook removed: the bot can poll again ('tgrunner run'); pending updates kept\n"
    assert tg.pending_updates == 2
    code, out, err = await in_thread(capsys, "delete-webhook", *_bot(tg), "--drop-pending-updates")
    assert (code, err) == (0, "")
    assert out.endswith("; pending updates dropped\n")
    assert tg.pending_updates == 0
    assert [c.params for c in tg.calls("deleteWebhook")] == [
        {"drop_pending_updates": False},
        {"drop_pending_updates": True},
    ]
    code, out, _ = await in_thread(capsys, "webhook-info", *_bot(tg))
    assert code == 0
    assert out.splitlines()[:2] == [
        "url               none: the bot gets updates by polling",
        "pending updates   0",
    ]


@pytest.mark.timeout(20)
async def test_webhook_info_shows_the_last_delivery_error_and_when(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    code, _, err = await in_thread(capsys, "set-webhook", url, *_bot(tg))
    assert code == 0, err
    tg.user("Alice").send("undeliverable")
    await tg.wait_for(lambda: tg.state.primary.last_error_message is not None, timeout=10)
    code, out, err = await in_thread(capsys, "webhook-info", *_bot(tg))
    assert (code, err) == (0, "")
    [line] = [line for line in out.splitlines() if line.startswith("last error")]
    assert " s ago): " in line and str(tg.state.primary.last_error_message) in line
    assert "pending updates   1" in out


@pytest.mark.timeout(20)
async def test_a_refused_token_is_one_line_and_exit_code_1(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["webhook-info"], ["delete-webhook"], ["set-webhook", "https://a.example/h"]):
        code, out, err = await in_thread(
            capsys, *argv, "--token", "123:wrong", "--api-url", tg.api_url
        )
        assert (code, out) == (1, "")
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"tgrunner {argv[0]}: Telegram refuses the bot token (401")
        assert "@BotFather" in err


BAD_USAGE = [
    (["set-webhook", "https://a.example/h", "--webhook-secret", "has space"],
     "argument --webhook-secret: must be 1 to 256 characters, each a letter"),
    (["set-webhook", "https://a.example/h", "--webhook-secret", "x" * 257],
     "argument --webhook-secret: must be 1 to 256 characters"),
    (["set-webhook", "https://a.example/h", "--max-connections", "0"],
     "argument --max-connections: '0' must be a whole number from 1 to 100"),
    (["set-webhook", "https://a.example/h", "--max-connections", "101"],
     "argument --max-connections: '101' must be a whole number from 1 to 100"),
    (["set-webhook", "https://a.example/h", "--allowed-updates", "mesage"],
     "unknown update kind 'mesage'; did you mean 'message'?"),
    (["set-webhook", "https://a.example/h", "--ip-address", "1.2.3"],
     "argument --ip-address: '1.2.3' is not an IPv4 or IPv6 address"),
    (["set-webhook", "a.example/h"], "argument URL: 'a.example/h' is not an https:// URL"),
    (["set-webhook", "http://a.example/h"], "Telegram delivers webhooks only to https:// URLs"),
    (["set-webhook", "https://a.example:8080/h"], "only to ports 443, 80, 88 and 8443, not 8080"),
    (["webhook-info", "--timeout", "0"], "argument --timeout: '0' must be a number, more than 0"),
    (["webhook-info", "--api-url", "localhost:8081"], "'localhost:8081' is not an http:// or"),
    (["delete-webhook", "--token", "nonsense"], "not in Telegram's format '<bot id>:<secret>'"),
    (["webhook-info"], "No bot token: set BOT_TOKEN (or TGRUNNER_TOKEN), or pass --token"),
]  # fmt: skip


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("argv", "message"), BAD_USAGE)
def test_bad_usage_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    # The token is fine where the test is about something else; nothing reaches Telegram.
    token = [] if "--token" in argv or argv == ["webhook-info"] else ["--token", "1:x"]
    code, out, err = in_process(capsys, *argv, *token)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err


@pytest.mark.timeout(30)
async def test_in_a_real_process_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await in_subprocess("webhook-info", "--token", "1:x", "--api-url", url)
    assert (code, out) == (1, "")
    assert err.startswith("tgrunner webhook-info: getWebhookInfo: cannot reach "), err
    assert err.count("\n") == 1 and "check --api-url" in err
    monkeypatch.setenv("TGRUNNER_API_URL", "https://api.telegram.org/bot")
    code, out, err = await in_subprocess("delete-webhook", "--token", "1:x")
    assert (code, out) == (2, "") and "without /bot" in err and err.count("\n") == 1


@pytest.mark.timeout(10)
def test_describe_info_and_ago() -> None:
    now = 1_700_000_000.0
    lines = dict(
        describe_info(
            {
                "url": "https://a.example/h",
                "has_custom_certificate": True,
                "pending_update_count": 3,
                "last_error_date": int(now - 300),
                "last_error_message": "Connection refused",
                "max_connections": 40,
            },
            now=now,
        )
    )
    assert lines["url"] == "https://a.example/h (custom certificate)"
    assert lines["last error"].endswith(" (5 min ago): Connection refused")
    assert lines["last error"][:4] == "2023"  # an ISO time: 2023-11-14T...
    assert lines["allowed updates"].startswith("default (all but chat_member")
    assert [ago(s) for s in (0, 59.4, 119, 600, 7200, 86400 * 3)] == [
        "0 s", "59 s", "119 s", "10 min", "2 h", "3 days"
    ]  # fmt: skip


@pytest.mark.timeout(20)
async def test_empty_allowed_updates_asks_for_telegrams_default_set(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await in_thread(
        capsys, "set-webhook", "http://127.0.0.1:9/h", *_bot(tg), "--allowed-updates", ""
    )
    assert (code, err) == (0, ""), err
    assert "updates: all but chat_member, message_reaction and message_reaction_count" in out
    [call] = tg.calls("setWebhook")
    assert call.params["allowed_updates"] == []
