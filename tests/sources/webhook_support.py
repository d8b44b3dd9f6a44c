"""Helpers of the webhook source tests: a source on loopback, a driver that plays the runtime,
and raw HTTP over sockets (so malformed requests reach the server as sent)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from tgrunner.client.bot import Bot
from tgrunner.sources.webhook import WebhookOptions, WebhookSource
from tgrunner.testing import FakeTelegram

SECRET = "s3cret-Token_1"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@contextlib.asynccontextmanager
async def serving(
    tg: FakeTelegram, backlog: Any = None, **options: Any
) -> AsyncIterator[WebhookSource]:
    """A started WebhookSource on 127.0.0.1 (a free port), closed (and its Bot) at the end."""
    options.setdefault("url", "http://127.0.0.1:0/hook")
    options.setdefault("listen", "127.0.0.1:0")
    options.setdefault("set_webhook", False)
    bot = Bot(token=tg.token, api_url=tg.api_url)
    kwargs = {} if backlog is None else {"backlog": backlog}
    src = WebhookSource(bot, WebhookOptions(**options), **kwargs)
    try:
        await src.start()
        yield src
    finally:
        await src.close()
        await bot.close()


@dataclass
class Driver:
    """Plays the runtime: takes batches, and confirms each unless ``hold`` is cleared."""

    src: WebhookSource
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.hold.set()  # confirm at once unless a test clears it

    @property
    def updates(self) -> list[dict[str, Any]]:
        return [u for batch in self.batches for u in batch]

    @property
    def ids(self) -> list[int]:
        return [u["update_id"] for u in self.updates]

    async def _run(self) -> None:
        while True:
            batch = await self.src.next_batch(100)
            self.batches.append(batch)
            self.got.set()
            await self.hold.wait()
            self.src.confirm(0)

    async def until(self, count: int, timeout: float = 5.0) -> None:
        """Wait until ``count`` updates were taken."""
        async with asyncio.timeout(timeout):
            while len(self.updates) < count:
                self.got.clear()
                await self.got.wait()

    async def __aenter__(self) -> Driver:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def request(
    body: bytes | dict[str, Any] | list[Any] = b'{"update_id": 1}',
    *,
    method: str = "POST",
    path: str = "/hook",
    secret: str | None = SECRET,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    length: int | None = None,
) -> bytes:
    """A raw HTTP/1.1 request; ``length`` overrides the Content-Length header."""
    if not isinstance(body, bytes):
        body = orjson.dumps(body)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if secret is not None:
        lines.append(f"X-Telegram-Bot-Api-Secret-Token: {secret}")
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    if not any(k.lower() == "transfer-encoding" for k in headers or {}):
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def update(uid: int, text: str = "hi", chat: int = 1) -> dict[str, Any]:
    return {
        "update_id": uid,
        "message": {
            "message_id": uid,
            "date": 0,
            "chat": {"id": chat, "type": "private"},
            "text": text,
        },
    }


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One HTTP response from ``reader`` (EOF before it: IncompleteReadError)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


async def exchange(port: int, data: bytes, timeout: float = 5.0) -> Answer:
    """Send ``data`` on a new connection and read one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(timeout):
            writer.write(data)
            await writer.drain()
            return await read_answer(reader)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def yield_until(condition: Any, timeout: float = 5.0) -> None:
    """Let the loop run (its I/O included) until ``condition()`` holds: progress, not time, is
    awaited; ``timeout`` only bounds a failure."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (no event exists for server-side progress)
            await asyncio.sleep(0)
