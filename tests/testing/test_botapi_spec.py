"""The shipped Bot API spec is an exact copy of the shared one."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "src" / "tgrunner" / "testing" / "botapi" / "api.json"
SHARED = REPO.parent / "shared" / "telegram-bot-api" / "api.json"


def test_shipped_spec_is_byte_identical_to_the_shared_one() -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent: it exists only beside a development checkout")
    assert SHIPPED.read_bytes() == SHARED.read_bytes()
