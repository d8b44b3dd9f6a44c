"""``tgrunner fake-telegram`` prints its URL and token, serves, and exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

TOKEN = "123456789:AAbcdefghijklmnopqrstuvwxyz012345678"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_a_signal_and_exits_0(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tgrunner.testing.fake.cli", "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url_line = proc.stdout.readline()
        token_line = proc.stdout.readline()
        match = re.fullmatch(r"API URL: (http://127\.0\.0\.1:\d+)\n", url_line)
        assert match, url_line
        assert token_line == f"Token: {TOKEN}\n"
        with urllib.request.urlopen(f"{match[1]}/bot{TOKEN}/getMe", timeout=10) as response:
            body = json.loads(response.read())
        assert body["ok"] is True
        assert body["result"]["id"] == 123456789
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_generated_token_has_telegrams_format() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tgrunner.testing.fake.cli", "--port", "0", "--seed", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        token = proc.stdout.readline().removeprefix("Token: ").strip()
        assert re.fullmatch(r"\d+:[A-Za-z0-9_-]{35}", token)
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def test_bad_token_is_refused() -> None:
    from tgrunner.testing.fake.cli import main

    assert main(["--token", "no-colon", "--port", "0"]) == 2
