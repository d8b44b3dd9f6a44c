"""Shared fixtures. Services are real: a test that needs one skips when it is unreachable,
or fails when ``TGRUNNER_REQUIRE_SERVICES=1`` (as in CI)."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services import Call
from tgrunner.testing import FakeTelegram

# Skips are summed up by place (tests/skips.py) instead of one line each.
pytest_plugins = ["skips"]


_SLOW_LEFT_OUT = pytest.StashKey[int]()


def _run_slow(config: pytest.Config) -> bool:
    """Slow process tests run in CI (``CI`` set to anything but empty, 0 or false), with
    ``TGRUNNER_SLOW=1``, or when the ``-m`` expression names them."""
    ci = os.environ.get("CI", "").strip().lower()
    return (
        ci not in ("", "0", "false", "no")
        or os.environ.get("TGRUNNER_SLOW") == "1"
        or "slow" in (config.option.markexpr or "")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the slow process tests out of a run on a developer's machine (see _run_slow);
    the summary says how many and how to run them."""
    if _run_slow(config):
        return
    slow = [item for item in items if "slow" in item.keywords]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if "slow" not in item.keywords]
        config.stash[_SLOW_LEFT_OUT] = len(slow)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    left_out = config.stash.get(_SLOW_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} slow process tests left out (deselected): they run in CI (CI=true), "
            "or here with TGRUNNER_SLOW=1"
        )


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every test gets its own data dir (the journal's home), also for the bots it starts."""
    path = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("TGRUNNER_DATA_DIR", str(path))
    return path


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A FakeTelegram serving on a free loopback port for the test's duration."""
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def api(tg: FakeTelegram) -> AsyncIterator[Call]:
    """``await api("method", **params)``: a JSON POST to the fake; gives (status, body)."""
    async with aiohttp.ClientSession() as session:

        async def call(method: str, **params: Any) -> tuple[int, dict[str, Any]]:
            url = f"{tg.api_url}/bot{tg.token}/{method}"
            async with session.post(url, json=params) as response:
                return response.status, await response.json()

        yield call


@pytest.fixture(autouse=True)
def _collect_leaks() -> Any:
    """Collect the young generations as each test ends, so an unclosed socket or transport is
    reported (as an error: warnings are errors) by the test that leaked it, not by whichever
    test the collector happens to run in. A full collection per test would cost minutes."""
    yield
    gc.collect(1)
