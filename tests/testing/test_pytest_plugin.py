"""The pytest plugin: declared as the package's ``pytest11`` entry point; its ``fake_telegram``
fixture gives each test a new FakeTelegram that sync tests, pytest-asyncio tests and anyio tests
can all use; loading it imports no bot framework."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from pytest_runs import PLUGIN, SOURCE, run_pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.slow

BOT = """
from tgrunner import Context, Router

router = Router()


@router.message()
async def echo(ctx: Context) -> None:
    await ctx.reply(ctx.text or "")
"""

SYNC_TESTS = """
from echo_bot import router

from tgrunner.testing import FakeTelegram, running

PORTS = []


def test_sync(fake_telegram: FakeTelegram) -> None:
    PORTS.append(fake_telegram.port)
    alice = fake_telegram.user("Alice")
    with running(router, fake_telegram):
        alice.send("sync")
        [reply] = fake_telegram.wait_for_replies_sync(alice, 1)
    assert reply["text"] == "sync"


def test_a_new_fake_per_test(fake_telegram: FakeTelegram) -> None:
    assert fake_telegram.requests == []
    assert fake_telegram.pending_updates == 0
    assert PORTS and fake_telegram.port != PORTS[0]
"""

ASYNCIO_TESTS = """
import pytest
from echo_bot import router

from tgrunner.testing import FakeTelegram, running


@pytest.mark.asyncio
async def test_async(fake_telegram: FakeTelegram) -> None:
    alice = fake_telegram.user("Alice")
    async with running(router, fake_telegram):
        alice.send("async")
        [reply] = await fake_telegram.wait_for_replies(alice, 1)
    assert reply["text"] == "async"
"""

ANYIO_TESTS = """
import pytest
from echo_bot import router

from tgrunner.testing import FakeTelegram, running


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_anyio(fake_telegram: FakeTelegram) -> None:
    alice = fake_telegram.user("Alice")
    async with running(router, fake_telegram):
        alice.send("anyio")
        [reply] = await fake_telegram.wait_for_replies(alice, 1)
    assert reply["text"] == "anyio"
"""


def project(tmp_path: Path, ini: str, **tests: str) -> Path:
    """A user's project: the bot module, test files and a pytest.ini."""
    (tmp_path / "echo_bot.py").write_text(BOT)
    (tmp_path / "pytest.ini").write_text(textwrap.dedent(ini))
    for name, text in tests.items():
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


def passed(result: subprocess.CompletedProcess[str], count: int) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"\b{count} passed\b", result.stdout), result.stdout
    assert not re.search(r"\b(failed|error|skipped|warning)", result.stdout), result.stdout


def test_the_entry_point_is_declared() -> None:
    project_table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project_table["entry-points"]["pytest11"] == {"tgrunner": PLUGIN}


@pytest.mark.timeout(120)
def test_sync_and_pytest_asyncio_tests_share_the_fixture(tmp_path: Path) -> None:
    ini = """
        [pytest]
        asyncio_default_fixture_loop_scope = function
        filterwarnings = error
    """
    root = project(tmp_path, ini, test_sync=SYNC_TESTS, test_asyncio=ASYNCIO_TESTS)
    passed(run_pytest(cwd=root), 3)


@pytest.mark.timeout(120)
def test_without_pytest_asyncio_sync_and_anyio_tests_work(tmp_path: Path) -> None:
    root = project(tmp_path, "[pytest]\nfilterwarnings = error\n", test_sync=SYNC_TESTS)
    (root / "test_anyio.py").write_text(ANYIO_TESTS)
    passed(run_pytest("-p", "no:asyncio", cwd=root), 3)


def test_loading_the_plugin_imports_no_bot_framework() -> None:
    code = (
        f"import sys; sys.path.insert(0, {SOURCE!r}); import {PLUGIN}; "
        "print(sorted(m for m in ('aiogram', 'telegram') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
