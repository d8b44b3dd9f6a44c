"""Micro-benchmark of what flood control adds to a reply: ``Bot.request("sendMessage", ...)``
with no flood control, with the default (reactive, nothing paused) and in telegram mode.

The transport is a stub that answers at once with a canned 200, so what is timed is the CPU
the Bot and its flood control spend per call: no network, no server. Each row runs ``--number``
calls in one coroutine (best of ``--repeat`` runs); the differences to the first row are
flood control's cost on the hot path.

    .venv/bin/python bench/flood_micro.py
    .venv/bin/python bench/flood_micro.py --number 500000
"""

from __future__ import annotations

import argparse
import asyncio
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.client.bot import Bot
from tgrunner.flood.limiter import FloodControl
from tgrunner.flood.options import FloodOptions

TOKEN = "123456:bench-bench-bench-bench-bench-bench"
BODY = b'{"ok":true,"result":{"message_id":1,"date":0,"chat":{"id":42,"type":"private"}}}'


class _Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self) -> None:
        self.status = 200
        self.headers: dict[str, str] = {"content-type": "application/json"}
        self.body = BODY


class StubTransport:
    """A :class:`tgrunner.protocols.Transport` answering every request with one canned 200."""

    def __init__(self) -> None:
        self.answer = _Answer()

    async def request(self, method: str, path: str, body: bytes = b"", **_: Any) -> _Answer:
        return self.answer

    async def close(self) -> None:
        pass


def _per_call(run: Callable[[int], Awaitable[None]], number: int, repeat: int) -> float:
    """Microseconds per call, best of ``repeat`` runs of ``number`` calls."""
    loop = asyncio.new_event_loop()
    try:
        best = min(
            timeit.repeat(lambda: loop.run_until_complete(run(number)), number=1, repeat=repeat)
        )
    finally:
        loop.close()
    return best / number * 1e6


def _replies(bot: Bot, *, new_chat_each: bool = False) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        request = bot.request
        params: dict[str, Any] = {"chat_id": 42, "text": "hello"}
        for i in range(n):
            if new_chat_each:
                params = {"chat_id": 1_000_000 + i, "text": "hello"}
            await request("sendMessage", params)

    return run


def _control_alone(flood: FloodControl) -> Callable[[int], Awaitable[None]]:
    transport = StubTransport()

    async def run(n: int) -> None:
        call = flood.call
        send = transport.request
        for _ in range(n):
            await call("sendMessage", 42, lambda: send("POST", "/x", b""))

    return run


def _exchange_alone() -> Callable[[int], Awaitable[None]]:
    transport = StubTransport()

    async def run(n: int) -> None:
        send = transport.request
        for _ in range(n):
            await (lambda: send("POST", "/x", b""))()

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--number", type=int, default=200_000, help="calls per run (default 200000)")
    p.add_argument("--repeat", type=int, default=5, help="runs, the best counts (default 5)")
    args = p.parse_args()
    n, r = args.number, args.repeat

    def bot(flood: Any) -> Bot:
        return Bot(TOKEN, api_url="http://127.0.0.1:9", transport=StubTransport(), flood=flood)

    telegram = FloodOptions(mode="telegram")
    rows = {
        "Bot.request, no flood control (--flood off)": _replies(bot(None)),
        "Bot.request, reactive (the default)": _replies(bot(FloodOptions())),
        "Bot.request, telegram, a new chat each call": _replies(bot(telegram), new_chat_each=True),
        "FloodControl.call alone, reactive": _control_alone(FloodControl()),
        "the exchange alone (a lambda and its await)": _exchange_alone(),
    }
    base = None
    for name, run in rows.items():
        us = _per_call(run, n, r)
        extra = "" if base is None else f"  (+{(us - base) * 1000:5.0f} ns)"
        if base is None:
            base = us
        elif not name.startswith("Bot."):
            extra = ""
        print(f"{name:<46} {us:6.3f} µs{extra}")


if __name__ == "__main__":
    main()
