"""Fixtures of the FakeTelegram tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tgrunner.testing import FakeTelegram

Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


@pytest.fixture
async def api(tg: FakeTelegram) -> AsyncIterator[Call]:
    """``await api("method", **params)``: a JSON POST to the fake; gives (status, body)."""
    async with aiohttp.ClientSession() as session:

        async def call(method: str, **params: Any) -> tuple[int, dict[str, Any]]:
            url = f"{tg.api_url}/bot{tg.token}/{method}"
            async with session.post(url, json=params) as response:
                return response.status, await response.json()

        yield call
