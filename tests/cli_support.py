"""Helpers of the CLI tests: ``tgrunner`` in this process (for what ends before a bot runs),
in a thread of it (for a command that calls a FakeTelegram serving on the test's event loop)
and in its own process (where a traceback would really be printed)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tgrunner.cli import main

__all__ = ["BOTS", "in_process", "in_subprocess", "in_thread"]

BOTS = Path(__file__).parent / "bots"


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``tgrunner ARGV`` through :func:`tgrunner.cli.main`: exit code, stdout, stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


async def in_thread(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """:func:`in_process` in a thread, so the test's event loop (and a FakeTelegram serving on
    it) runs meanwhile: exit code, stdout, stderr."""
    return await asyncio.to_thread(in_process, capsys, *argv)


async def in_subprocess(
    *argv: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    """``python -m tgrunner ARGV`` from the test bots' folder: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", *argv,
        cwd=BOTS, env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
