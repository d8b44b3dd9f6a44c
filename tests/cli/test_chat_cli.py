"""``tgrunner chat`` as a process with piped standard input, for each front-end (native,
aiogram, PTB), its bad input (one line, exit code 2, no traceback) and its ``--help``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import tgrunner
from tgrunner.testing.chat.commands import COMMANDS

TESTS = Path(__file__).parent.parent
BOTS = TESTS / "bots"
AIOGRAM = TESTS / "frontends" / "aiogram"
PTB = TESTS / "frontends" / "ptb"


def _env(path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with ``path`` importable and no data dir set, so the defaults show."""
    base = {k: v for k, v in os.environ.items() if k != "TGRUNNER_DATA_DIR"}
    pythonpath = os.pathsep.join(p for p in (str(path), base.get("PYTHONPATH")) if p)
    return {**base, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1", **(extra or {})}


def chat(
    *args: str, stdin: str = "", cwd: Path, path: Path = BOTS, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``tgrunner chat *args`` from ``cwd``, with the bot's folder ``path`` importable and
    ``stdin`` piped in."""
    return subprocess.run(
        [sys.executable, "-m", "tgrunner", "chat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(path, env),
        timeout=50,
    )


def _after_banner(out: str) -> list[str]:
    lines = out.splitlines()
    return lines[lines.index("Quit with /quit, Ctrl-D or Ctrl-C.") + 1 :]


@pytest.mark.slow
def test_native_bot_piped_transcript_in_order_and_no_data_dir_left(tmp_path: Path) -> None:
    script = "hi\n/start\n/press 1\n/as Bob\nhello\n/group Friends\nhey\n/photo cap\n/quit\n"
    done = chat("chat_bot:router", stdin=script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "@test_" in done.stdout and "native front-end" in done.stdout
    assert _after_banner(done.stdout) == [
        "You> hi",
        "bot: You said: hi",
        "You> /start",
        "bot: Hello, You! Do you like it?",
        "  [1] Yes  [2] No",
        "  <Docs: https://example.org/docs>",
        "You> /press 1",
        "bot (answer): Noted",
        "bot (edited): You chose Yes",
        "You> /as Bob",
        "-- now talking as Bob, in a private chat with the bot",
        "Bob> hello",
        "bot: Bob said: hello",
        "Bob> /group Friends",
        "-- now talking as Bob, in the group Friends",
        "Bob @ Friends> hey",
        "bot: Bob said in Friends: hey",
        "Bob @ Friends> /photo cap",
        "bot: Bob sent a photo: cap",
        "Bob @ Friends> /quit",
        "-- stopping the bot",
    ]
    assert done.stderr == ""  # logging stays at WARNING: nothing to say
    assert list(tmp_path.iterdir()) == []  # strict offsets: no .tgrunner folder


@pytest.mark.slow
def test_end_of_input_stops_cleanly(tmp_path: Path) -> None:
    done = chat("chat_bot:router", stdin="hi\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _after_banner(done.stdout) == ["You> hi", "bot: You said: hi", "-- stopping the bot"]


@pytest.mark.slow
def test_a_busy_bot_is_waited_for_a_bounded_time(tmp_path: Path) -> None:
    args = ("chat_bot:router", "--reply-timeout", "0.5", "--grace", "0.5")
    done = chat(*args, stdin="/slow\n/quit\n", cwd=tmp_path)
    assert _after_banner(done.stdout) == [
        "You> /slow",
        "bot: working",
        "-- the bot is still busy after 0.5 s; going on",
        "You> /quit",
        "-- stopping the bot: 1 handler(s) still running get up to 0.5 s to finish (Ctrl-C "
        "again stops them at once)",
    ]
    # The grace ran out and the handler was cancelled: not a clean stop, as for 'run'.
    assert done.returncode == 1, done.stderr
    assert "grace of 0.5 s ran out" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_sigterm_stops_cleanly_while_waiting_for_a_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tgrunner", "chat", "chat_bot:router"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(BOTS),
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("hi\n")
        proc.stdin.flush()
        for line in proc.stdout:
            if line == "bot: You said: hi\n":
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    # The reply may show while its handler is still returning: "stopping the bot[: 1 …]".
    [line] = out.splitlines()
    assert line.startswith("-- stopping the bot"), line
    assert "Traceback" not in err


@pytest.mark.slow
def test_aiogram_dispatcher(tmp_path: Path) -> None:
    done = chat(
        "aiogram_echo:dp", "--user", "Alice", stdin="hi\n/quit\n", cwd=tmp_path, path=AIOGRAM
    )
    assert done.returncode == 0, done.stderr
    assert "aiogram front-end" in done.stdout
    assert _after_banner(done.stdout)[:2] == ["Alice> hi", "bot: hi"]
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_ptb_application(tmp_path: Path) -> None:
    done = chat("ptb_sample:application", stdin="hi\n/as Bob\nyo\n", cwd=tmp_path, path=PTB)
    assert done.returncode == 0, done.stderr
    assert "python-telegram-bot front-end" in done.stdout
    assert _after_banner(done.stdout)[:5] == [
        "You> hi",
        "bot: hi",
        "You> /as Bob",
        "-- now talking as Bob, in a private chat with the bot",
        "Bob> yo",
    ]
    assert "bot: yo" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_verbose_shows_the_runtime_log_on_stderr(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tgrunner", "-v", "chat", "chat_bot:router"],
        input="/quit\n",
        capture_output=True,
        text=True,
        cwd=BOTS,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert "stopped (clean)" in done.stderr  # the runner's INFO line on stop
    assert "stopped (clean)" not in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("nosuch:thing",), "Cannot import module 'nosuch'"),
        (("chat_bot",), "Bad target"),
        (("chat_bot:nothing",), "has no attribute 'nothing'"),
        (("chat_bot:_QUESTION",), "tgrunner cannot run chat_bot:_QUESTION, a builtins.dict"),
        (("chat_bot:router", "--reply-timeout", "0"), "--reply-timeout must be more than 0"),
        (("chat_bot:router", "--user", " "), "--user must not be empty"),
        (("chat_bot:router", "--concurrency", "many"), "invalid int value"),
        ((), "the following arguments are required: target"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    done = chat(*args, stdin="hi\n", cwd=tmp_path)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert says in line
    assert done.stdout == ""  # no banner: nothing started


@pytest.mark.slow
def test_a_bad_setting_in_the_environment_is_exit_code_2(tmp_path: Path) -> None:
    done = chat("chat_bot:router", cwd=tmp_path, env={"TGRUNNER_CONCURRENCY": "lots"})
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert "TGRUNNER_CONCURRENCY" in line


def test_help_describes_commands_defaults_environment_and_examples() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tgrunner", "chat", "--help"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for name in COMMANDS:
        assert f"  /{name}" in text, name
    for part in ("//TEXT", "defaults:", "strict offsets", "environment:", "exit codes:", "SIGTERM"):
        assert part in text, part
    assert "examples:" in text and "tgrunner chat mybot:router" in text
    assert "(default You)" in text and "(default 10)" in text
    assert "``" not in text and "::" not in text  # no reStructuredText markup


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "front_end", "hello"),
    [
        ("aiogram_quick:main", "aiogram", "bot: Hello, <b>You</b>!"),
        ("ptb_echobot:main", "python-telegram-bot", 'bot: Hi <a href="tg://user?id='),
    ],
)
def test_an_entry_point_runs_in_the_chat(
    tmp_path: Path, target: str, front_end: str, hello: str
) -> None:
    # main() as the frameworks' quickstarts write it, reading BOT_TOKEN at import: the chat
    # gives it the fake's token and runs what main() starts at its polling call.
    env = {k: v for k, v in _env(BOTS).items() if k not in ("BOT_TOKEN", "TGRUNNER_TOKEN")}
    done = subprocess.run(
        [sys.executable, "-m", "tgrunner", "chat", target],
        input="/start\nping\n/quit\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert f"{front_end} front-end" in done.stdout
    lines = _after_banner(done.stdout)
    assert lines[0] == "You> /start" and lines[1].startswith(hello), lines
    assert lines[2:4] == ["You> ping", "bot: ping"], lines
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_error_in_the_bots_module_shows_its_own_frames(tmp_path: Path) -> None:
    done = chat("broken_import:router", stdin="/quit\n", cwd=tmp_path)
    assert done.returncode == 2, done
    err = done.stderr
    assert err.count("Traceback (most recent call last)") == 1, err
    assert 'broken_import.py", line 7, in compute' in err
    frames = err.partition("Traceback")[2].partition("ZeroDivisionError")[0]
    assert str(Path(tgrunner.__file__).parent) not in frames, frames  # none of tgrunner's
    assert err.rstrip().splitlines()[-1].startswith("tgrunner: importing 'broken_import' raised")
