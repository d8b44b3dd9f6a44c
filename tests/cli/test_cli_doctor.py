"""``tgrunner doctor`` against FakeTelegram over real HTTP: all green, a refused token, an
unreachable server, a webhook set, a slow server, an unwritable data dir, the clock against
the Date header, --json, the ASCII marks, and bad usage (one line, exit code 2)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from cli_support import in_process, in_subprocess, in_thread
from servers import free_port
from tgrunner.cli.doctor import clock_offset
from tgrunner.testing import FakeTelegram
from tgrunner.testing.fake.faults import Faults

NAMES = ["token", "latency", "webhook", "clock", "data dir"]


def _bot(tg: FakeTelegram) -> list[str]:
    return ["--token", tg.token, "--api-url", tg.api_url]


def _lines(out: str) -> dict[str, tuple[str, str]]:
    """Each check's line as name -> (mark, text)."""
    found = {}
    for line in out.splitlines():
        mark, _, rest = line.partition(" ")
        name, _, text = rest.partition(": ")
        found[name] = (mark, text)
    assert list(found) == NAMES, out
    return found


@pytest.fixture(autouse=True)
def _no_token_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_TOKEN", "TGRUNNER_TOKEN", "TGRUNNER_API_URL", "TGRUNNER_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.timeout(20)
async def test_all_green_creates_nothing(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data_dir = tmp_path / "not" / "yet"
    code, out, err = await in_thread(capsys, "doctor", *_bot(tg), "--data-dir", str(data_dir))
    assert (code, err) == (0, ""), out
    lines = _lines(out)
    assert {mark for mark, _ in lines.values()} == {"✓"}, out
    username, bot_id = tg.bot_user["username"], tg.bot_user["id"]
    assert lines["token"][1] == f"@{username} (id {bot_id}), at {tg.api_url}"
    assert lines["latency"][1].endswith(
        "over 10 getMe calls (a good host: within 50 ms)"
    ) and lines["latency"][1].startswith("p50 ")
    assert lines["webhook"][1] == "none, the bot can poll; 0 pending updates"
    assert lines["clock"][1] == "within 1 s of the Bot API server's"
    assert lines["data dir"][1].startswith(f"{data_dir} is writable, ")
    assert "'tgrunner run' creates it" in lines["data dir"][1]
    assert not (tmp_path / "not").exists()
    # 1 getMe for the token, then 10 timed ones, each a request of its own.
    assert len(tg.calls("getMe")) == 11 and len(tg.calls("getWebhookInfo")) == 1


@pytest.mark.timeout(20)
async def test_json_and_the_clock_against_fake_telegrams_date_header(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    (data_dir / str(tg.bot_user["id"])).mkdir()
    code, out, err = await in_thread(capsys, "doctor", *_bot(tg), "--json")
    assert (code, err) == (0, "")
    result = orjson.loads(out)  # one JSON object, nothing else
    assert result["ok"] is True
    checks = {c["name"]: c for c in result["checks"]}
    assert list(checks) == NAMES and {c["status"] for c in checks.values()} == {"ok"}
    assert checks["token"]["id"] == tg.bot_user["id"]
    assert 0 < checks["latency"]["p50_ms"] <= checks["latency"]["p99_ms"]
    # FakeTelegram's clock is this host's: its Date headers allow no skew at all.
    assert checks["clock"]["offset_s"] == 0
    assert checks["webhook"]["info"]["url"] == ""
    # The bot's own folder exists, so that is where the probe went.
    assert checks["data dir"]["path"] == str(data_dir / str(tg.bot_user["id"]))
    assert os.listdir(data_dir / str(tg.bot_user["id"])) == []


@pytest.mark.timeout(20)
async def test_a_wrong_token_fails_and_says_where_to_get_one(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await in_thread(
        capsys, "doctor", "--token", "123:wrong", "--api-url", tg.api_url
    )
    assert (code, err) == (1, "")
    lines = _lines(out)
    assert lines["token"] == (
        "✗",
        "Telegram refuses the bot token (401 Unauthorized): it is wrong or was revoked; copy "
        "the bot's token from @BotFather (/mybots, then 'API Token').",
    )
    for name in ("latency", "webhook", "clock"):
        assert lines[name] == ("-", "skipped: the Bot API did not answer getMe")
    assert lines["data dir"][0] == "✓"


@pytest.mark.timeout(30)
async def test_an_unreachable_server_is_a_failed_check_not_a_traceback(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await in_subprocess(
        "doctor", "--token", "1:x", "--api-url", url, "--data-dir", str(tmp_path)
    )
    assert (code, err) == (1, ""), err
    assert "Traceback" not in out
    mark, text = _lines(out)["token"]
    assert mark == "✗"
    assert text.startswith(f"getMe: cannot reach {url}: ") and "check --api-url" in text


@pytest.mark.timeout(30)
async def test_a_webhook_set_and_its_last_error_are_reported(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = f"http://127.0.0.1:{free_port()}/hook"
    assert (await in_thread(capsys, "set-webhook", hook, *_bot(tg)))[0] == 0
    tg.user("Alice").send("undeliverable")
    await tg.wait_for(lambda: tg.state.primary.last_error_message is not None, timeout=10)
    code, out, err = await in_thread(capsys, "doctor", *_bot(tg))
    assert (code, err) == (0, ""), out  # a warning, not a failure
    mark, text = _lines(out)["webhook"]
    assert mark == "!"
    assert text.startswith(f"set to {hook}; 1 pending update; last delivery error ")
    assert str(tg.state.primary.last_error_message) in text
    assert text.endswith(
        "right for a bot run with --webhook-url; polling fails with 409 Conflict while it "
        "is set: to poll, remove it with 'tgrunner delete-webhook'"
    )


@pytest.mark.timeout(30)
async def test_a_slow_server_is_a_latency_warning(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str]
) -> None:
    tg.faults = Faults(latency=0.06, methods=frozenset({"getMe"}))
    code, out, err = await in_thread(capsys, "doctor", *_bot(tg))
    assert (code, err) == (0, ""), out
    mark, text = _lines(out)["latency"]
    assert mark == "!"
    assert ": slow; a good host answers within 50 ms" in text
    p50 = float(text.split()[1])
    assert p50 >= 60


def _unwritable(tmp_path: Path, how: str) -> Path:
    if how == "parent is a file":
        (tmp_path / "a-file").write_text("")
        return tmp_path / "a-file" / "data"
    if os.geteuid() == 0:
        pytest.skip("root writes in a read-only folder anyway")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return locked / "data"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["parent is a file", "read-only folder"])
async def test_an_unwritable_data_dir_fails(
    tg: FakeTelegram, capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str
) -> None:
    path = _unwritable(tmp_path, how)
    try:
        code, out, err = await in_thread(capsys, "doctor", *_bot(tg), "--data-dir", str(path))
    finally:
        path.parent.chmod(0o755)
    assert (code, err) == (1, "")
    mark, text = _lines(out)["data dir"]
    assert mark == "✗"
    assert text.startswith(f"cannot write in {path} (")
    assert text.endswith("pass another --data-dir (or set TGRUNNER_DATA_DIR)")
    assert not path.exists()


@pytest.mark.timeout(30)
async def test_ascii_marks_when_stdout_cannot_print_them(tmp_path: Path) -> None:
    async with FakeTelegram() as tg:
        code, out, err = await in_subprocess(
            "doctor", "--data-dir", str(tmp_path),
            env={"BOT_TOKEN": tg.token, "TGRUNNER_API_URL": tg.api_url,
                 "PYTHONIOENCODING": "ascii"},
        )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert {mark for mark, _ in _lines(out).values()} == {"ok"}


@pytest.mark.timeout(10)
def test_clock_offset_is_the_one_nearest_zero_that_every_date_allows() -> None:
    # Local requests at 100.2-100.3 and 101.6-101.7; the server's Date said 100 and 101.
    assert clock_offset([(100.2, 100.3, 100.0), (101.6, 101.7, 101.0)]) == 0
    # The server's Date is 5 s on: it is at least 4.7 s ahead (4.7 = 105 - 100.3).
    assert clock_offset([(100.2, 100.3, 105.0)]) == pytest.approx(4.7)
    # The server is behind: its whole second ended 3.2 s before the request was sent.
    assert clock_offset([(100.2, 100.3, 96.0)]) == pytest.approx(-3.2)
    assert clock_offset([]) is None


BAD_USAGE = [
    ([], "No bot token: set BOT_TOKEN (or TGRUNNER_TOKEN), or pass --token; copy the bot's"),
    (["--token", "12345"], "The bot token is not in Telegram's format '<bot id>:<secret>'"),
    (["--token", "1:x", "--timeout", "-1"], "argument --timeout: '-1' must be a number, more"),
    (["--token", "1:x", "--api-url", "https://api.telegram.org/bot"], "without /bot"),
    (["--token", "1:x", "--jsn"], "unrecognized arguments: --jsn"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("argv", "message"), BAD_USAGE)
def test_bad_usage_is_one_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = in_process(capsys, "doctor", *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err, err


@pytest.mark.timeout(30)
def test_these_commands_never_import_fake_telegram() -> None:
    """They are in the CLI's lean set: a host check should not pay for tgrunner.testing."""
    script = (
        "import sys\n"
        "from tgrunner.cli import main\n"
        "for command in ('doctor', 'set-webhook', 'delete-webhook', 'webhook-info'):\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('tgrunner.testing')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=25, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"


@pytest.mark.timeout(60)
async def test_a_reader_that_goes_away_is_no_failure(tg: FakeTelegram) -> None:
    """``tgrunner doctor | head -1``: the rest of the output has nowhere to go; tgrunner ends
    quietly, as a writer ended by SIGPIPE, not with a failure line."""
    r, w = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "doctor", "--api-url", tg.api_url, "--token", tg.token,
        stdin=asyncio.subprocess.DEVNULL, stdout=w, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    os.close(w)
    with os.fdopen(r, "rb") as out:
        first = await asyncio.to_thread(out.readline)  # then the reader is gone
    assert b"token" in first
    _, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode in (0, 141), err
    assert b"failure" not in err and b"Traceback" not in err and b"Exception" not in err, err
