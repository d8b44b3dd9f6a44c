"""Shared by the flood control's tests: answers as an in-process server gives them (200,
429 with a retry_after, 5xx) and exchanges that answer in a given order."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tgrunner.flood.limiter import FloodControl

__all__ = ["OK", "Answer", "answers", "no_lanes", "too_many"]


class Answer:
    def __init__(self, status: int, body: bytes = b"{}") -> None:
        self.status = status
        self.headers: dict[str, str] = {}
        self.body = body


OK = Answer(200, b'{"ok":true,"result":true}')


def too_many(seconds: float) -> Answer:
    body = {"ok": False, "error_code": 429, "parameters": {"retry_after": seconds}}
    return Answer(429, orjson.dumps(body))


def answers(*first: Answer, served: asyncio.Event | None = None) -> Any:
    """An exchange answering ``first`` in turn, then 200 for good; ``served`` is set as the
    first answer goes back (flood control has acted on it when the caller next yields)."""
    left = list(first)

    async def send() -> Answer:
        if served is not None:
            served.set()
        return left.pop(0) if left else OK

    return send


async def no_lanes(control: FloodControl, chats: range) -> None:
    """Wait out the chats' pauses; then no lane may be left."""
    await asyncio.sleep(max(control.paused(c) for c in chats) + 0.02)
    assert control.lanes == 0
