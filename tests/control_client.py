"""Helpers of the control API's tests: a small client (one aiohttp session, and
``await control("POST", "/send", {...})`` giving ``(status, envelope)``), and
``tgrunner fake-telegram`` run as a process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

__all__ = ["ENV", "Control", "Fake", "fake_telegram"]

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
"""The environment of the processes the tests start."""


class Control:
    """Calls ``<base>/control<path>``; ``ok()`` also checks the call succeeded."""

    def __init__(self, session: aiohttp.ClientSession, base: str, secret: str | None = None):
        self.session = session
        self.base = base.rstrip("/")
        self.headers = {"X-Control-Secret": secret} if secret is not None else {}

    async def __call__(
        self,
        method: str,
        path: str = "",
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One request: ``body`` is sent as JSON, ``data`` as raw bytes."""
        kwargs: dict[str, Any] = {"headers": {**self.headers, **(headers or {})}}
        if body is not None:
            kwargs["json"] = body
        if data is not None:
            kwargs["data"] = data
        if params is not None:
            kwargs["params"] = params
        url = f"{self.base}/control{path}"
        async with self.session.request(method, url, **kwargs) as response:
            text = await response.text()
            assert "Traceback" not in text, text
            envelope = await response.json(content_type=None)
            assert response.headers["Content-Type"] == "application/json"
            return response.status, envelope

    async def ok(self, method: str, path: str = "", body: Any = None, **kwargs: Any) -> Any:
        """The ``result`` of a call that must succeed."""
        status, envelope = await self(method, path, body, **kwargs)
        assert status == 200 and envelope["ok"] is True, (status, envelope)
        return envelope["result"]

    async def user(self, first_name: str, **fields: Any) -> dict[str, Any]:
        """``POST /control/users``: a new user's ``{id, chat_id, user}``."""
        result: dict[str, Any] = await self.ok(
            "POST", "/users", {"first_name": first_name, **fields}
        )
        return result

    async def replies(self, chat_id: int, after: int = 0, wait: float = 10) -> dict[str, Any]:
        """``GET /control/chats/<chat_id>/replies`` as a long poll (``wait`` seconds)."""
        params = {"after": str(after), "wait": str(wait)}
        result: dict[str, Any] = await self.ok("GET", f"/chats/{chat_id}/replies", params=params)
        return result


class Fake:
    """A running ``tgrunner fake-telegram``, with what it printed at start."""

    def __init__(self, proc: asyncio.subprocess.Process, lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines
        printed = dict(line.split(": ", 1) for line in lines)
        self.api_url = printed["API URL"]
        self.token = printed["Token"]
        self.control_url = printed["Control API"]
        self.secret = printed.get("Control secret")

    async def stop(self) -> tuple[int, str]:
        """SIGTERM by PID; the exit code and stderr."""
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            _, stderr = await self.proc.communicate()
        return self.proc.returncode or 0, stderr.decode()


@asynccontextmanager
async def fake_telegram(
    *args: str, env: Mapping[str, str] = ENV, printed: int = 3
) -> AsyncIterator[Fake]:
    """``tgrunner fake-telegram --port 0 *args``, once it has ``printed`` its start lines;
    killed at the end if still running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "fake-telegram", "--port", "0", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        async with asyncio.timeout(30):
            while len(lines) < printed:
                line = (await proc.stdout.readline()).decode()
                assert line, f"fake-telegram ended early: {await proc.stderr.read()!r}"
                lines.append(line.rstrip("\n"))
        yield Fake(proc, lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
