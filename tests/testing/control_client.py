"""A small client of FakeTelegram's control API for the tests: one aiohttp session, and
``await control("POST", "/send", {...})`` giving ``(status, envelope)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["Control"]


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
