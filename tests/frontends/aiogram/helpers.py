"""Shared by the aiogram front-end tests: the sample bot and a runner served as ``tgrunner run``
does. A plain module, not a conftest: a second conftest would shadow the root one's
``need_service``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tgrunner.runtime.build import build_runner
from tgrunner.runtime.runner import Runner
from tgrunner.settings import Settings
from tgrunner.sources.polling import PollingOptions
from tgrunner.testing import FakeTelegram

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[2] / "examples"
SETTINGS = Settings(polling=PollingOptions(timeout=1, backoff_base=0.01, backoff_cap=0.05), grace=5)


def load_sample(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``examples/aiogram_bot.py``, with its slow command made quick."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import aiogram_bot

    monkeypatch.setattr(aiogram_bot, "SLOW_SECONDS", 0.05)
    return aiogram_bot


@asynccontextmanager
async def running(target: Any, tg: FakeTelegram, **options: Any) -> AsyncIterator[Runner]:
    """Serve ``target`` through build_runner, as ``tgrunner run`` does; stop cleanly at the end."""
    settings = options.pop("settings", SETTINGS)
    runner = build_runner(target, token=tg.token, api_url=tg.api_url, settings=settings, **options)
    task = asyncio.get_running_loop().create_task(runner.serve(install_signals=False))
    try:
        yield runner
    except BaseException:
        runner.stop(fast=True)
        await asyncio.wait_for(task, 10)
        raise
    runner.stop()
    assert await asyncio.wait_for(task, 10) == 0
