"""An aiogram bot under ``tgrunner run`` in its own process: SIGTERM under load, then a
restart, loses and repeats nothing; SIGKILL and a restart lose nothing and repeat at most what
was in flight."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chaos import kill_and_restart, stop_and_restart
from processes import MODES, end_started_bots
from tgrunner.testing import FakeTelegram

HERE = Path(__file__).parent

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
async def _end_our_bots() -> AsyncIterator[None]:
    yield
    await end_started_bots()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(120)
async def test_sigterm_under_load_then_restart_loses_and_repeats_nothing(
    tg: FakeTelegram, mode: str
) -> None:
    result = await stop_and_restart(tg, "aiogram_echo:dp", mode, cwd=HERE)
    assert (result.lost, result.duplicates, result.violations) == (0, 0, 0)
    assert tg.pending_updates == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.timeout(300)
async def test_five_sigkills_under_load_lose_nothing(tg: FakeTelegram, mode: str) -> None:
    result = await kill_and_restart(tg, "aiogram_echo:create", mode, cwd=HERE)
    assert (result.tally.lost, result.tally.violations) == (0, 0)
    assert result.tally.duplicates <= result.bound, result
